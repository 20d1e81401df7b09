"""The PyTorch side of inference: a checkpoint's network behind the same interface as onnx_model.OnnxPipeline.

infer.Classifier imports this module only for checkpoints (by name, at load time), so reading .onnx models never
imports torch.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .checkpoint import load_calibrated
from .export import cached_export
from .features import build_frontend
from .onnx_model import OnnxPipeline
from .runconfig import TrainConfig


class TorchPipeline:
    """(B, num_samples) float32 windows -> (B, classes) probabilities: training's front-end, the network, softmax of
    the logits divided by the temperature fitted at training (as the ONNX export's graph does)."""

    def __init__(
        self,
        net: torch.nn.Module,
        cfg: TrainConfig,
        device: str | torch.device = "cpu",
        temperature: float = 1.0,
        none_threshold: float | None = None,
    ):
        self.device = torch.device(device)
        self.temperature = float(temperature)
        self.none_threshold = none_threshold  # the model's own; infer.Classifier applies it
        self.net = net.to(self.device).eval()
        self.frontend = build_frontend(cfg.features, cfg.audio.sample_rate).to(self.device).eval()

    @torch.inference_mode()
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        x = self.frontend(torch.as_tensor(np.asarray(windows, dtype=np.float32)).to(self.device))
        return torch.softmax(self.net(x).float() / self.temperature, dim=1).cpu().numpy()


def load_checkpoint_model(
    path: str | os.PathLike, backend: str, device: str | torch.device = "cpu", threads: int | None = None
) -> tuple[TorchPipeline | OnnxPipeline, TrainConfig, list[str]]:
    """(pipeline, config, classes) of a checkpoint: in torch, or for backend "onnx" its whole-pipeline export,
    made once into data_home()/onnx (keyed by the checkpoint's content) and reused."""
    if threads:
        torch.set_num_threads(threads)
    if backend == "onnx":
        net, cfg, classes, cal = load_calibrated(path, "cpu")
        return OnnxPipeline(cached_export(path, net, cfg, classes, cal), threads), cfg, classes
    net, cfg, classes, cal = load_calibrated(path, device)
    return TorchPipeline(net, cfg, device, *cal), cfg, classes
