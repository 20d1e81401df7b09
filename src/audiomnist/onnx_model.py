"""Trained models without torch: where a named model lives, an exported pipeline's sidecar, and the ONNX Runtime
session that turns (batch, num_samples) waveform windows into class probabilities.

An export (`audiomnist export MODEL --onnx OUT.onnx`, format 2) is the whole pipeline in one graph: mono float32
windows of exactly cfg.audio.num_samples samples at the model's rate (input "waveform", any batch size) through
STFT, mel, log, top_db floor, per-clip normalisation, the network and softmax(logits / T) to "probabilities", T
being the temperature fitted at training (the sidecar's "temperature", already applied in the graph; 1.0 for models
without one). Reading files, resampling
and placing each clip in its window (infer.Classifier.windows) stay in Python: they are numpy and soxr, not torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .audio import AudioConfig
from .config import from_dict
from .errors import AudiomnistError, ConfigError

PRETRAINED = Path(__file__).parent / "pretrained"
INPUT, OUTPUT = "waveform", "probabilities"
FORMAT = 2  # 1: the network alone (input "features", output "logits"), front-end left to torch
# The class of clips that are not an English digit (trained from `train --negative` folders): a model whose classes
# hold it answers "no digit" for it. dataset.NONE is this name.
NONE_CLASS = "none"


def check_temperature(value, where: str | os.PathLike) -> float:
    """A softmax temperature read from a checkpoint or sidecar: a positive finite number (1.0: uncalibrated)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
        raise AudiomnistError(f"{where}: temperature must be a positive number, got {value!r}")
    return float(value)


def check_none_threshold(value, where: str | os.PathLike) -> float | None:
    """A stored p(none) threshold (see infer.Classifier): None, or a number above 0 and at most 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 1:
        raise AudiomnistError(f"{where}: none_threshold must be above 0 and at most 1, got {value!r}")
    return float(value)


class Calibration(NamedTuple):
    """How a model's logits become answers: divided by `temperature` (fitted on validation speakers) before the
    softmax, and "not a digit" once p(none) reaches `none_threshold` (None: when none is the most likely class)."""

    temperature: float = 1.0
    none_threshold: float | None = None


def torch_available() -> bool:
    """Whether torch can be imported, found without importing it (a None entry in sys.modules blocks it)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # an import hook that refuses torch
        return False


def resolve_model(spec: str | os.PathLike | None, prefer: str | None = None) -> Path:
    """A model file from a run folder, a checkpoint, an .onnx file, or a shipped model's name (None: "default").

    A shipped name is its checkpoint (.pt) where torch is installed, else its ONNX export; prefer "onnx" or
    "torch" picks the other way round when both exist.
    """
    if spec is None or str(spec) == "":
        spec = "default"
    path = Path(spec)
    if path.is_dir():
        if (path / "best.pt").is_file():
            return path / "best.pt"
        raise AudiomnistError(f"{path}: not a run folder (no best.pt)")
    if path.is_file():
        return path
    onnx_first = prefer == "onnx" or (prefer is None and not torch_available())
    for suffix in (".onnx", ".pt") if onnx_first else (".pt", ".onnx"):
        shipped = PRETRAINED / f"{spec}{suffix}"
        if shipped.is_file():
            return shipped
    names = sorted({p.stem for p in PRETRAINED.glob("*") if p.suffix in (".pt", ".onnx")})
    raise AudiomnistError(
        f"{spec}: no such run folder, model file or shipped model (shipped: {', '.join(names) or 'none'})"
    )


@dataclass(frozen=True)
class ModelInfo:
    """What inference needs from a training config, read without torch: the network's name, the target, how audio
    is read and fitted. `config` is the whole training config as saved (runconfig.config_from_dict rebuilds it)."""

    model: str
    target: str
    audio: AudioConfig
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: dict) -> ModelInfo:
        audio = config.get("audio")
        if not isinstance(audio, dict):
            raise ConfigError("no 'audio' section")
        return cls(
            str(config.get("model", "?")), str(config.get("target", "digit")), from_dict(AudioConfig, audio), config
        )


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def read_sidecar(onnx_path: str | os.PathLike) -> dict:
    """The sidecar of an exported model, checked: classes must be names and its config give the audio settings."""
    side = sidecar_path(onnx_path)
    if not side.is_file():
        raise AudiomnistError(
            f"{side}: missing; {onnx_path} needs the JSON sidecar that `audiomnist export` writes beside it "
            "(training config and class names)"
        )
    try:
        data = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AudiomnistError(f"{side}: not a readable JSON sidecar ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise AudiomnistError(f"{side}: not an audiomnist ONNX sidecar (no 'config' object)")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise AudiomnistError(f"{side}: 'classes' must be a non-empty list of names")
    data["temperature"] = check_temperature(data.get("temperature", 1.0), side)  # older sidecars: 1.0
    data["none_threshold"] = check_none_threshold(data.get("none_threshold"), side)
    try:
        ModelInfo.from_config(data["config"])
    except (ConfigError, TypeError, ValueError) as e:
        raise AudiomnistError(f"{side}: invalid 'config' ({e})") from None
    if data.get("format") != FORMAT or data.get("input", {}).get("name") != INPUT:
        raise AudiomnistError(
            f"{onnx_path}: an export from an older audiomnist (the network alone, input "
            f"{data.get('input', {}).get('name')!r}); this version runs whole-pipeline exports (input {INPUT!r}): "
            f"re-export the checkpoint with `audiomnist export RUN_DIR --onnx {Path(onnx_path).name}`"
        )
    return data


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise AudiomnistError("ONNX models need onnxruntime: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads must not burn a shared CPU
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise AudiomnistError(f"{path}: not a loadable ONNX model ({e})") from None


class OnnxPipeline:
    """An exported pipeline on ONNX Runtime: (B, num_samples) float32 windows -> (B, classes) probabilities.

    `temperature` is the calibration the graph applies to its logits (from the sidecar), for the record;
    `none_threshold` the model's own p(none) threshold (infer.Classifier applies it)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        side = read_sidecar(path)
        self.info = ModelInfo.from_config(side["config"])
        self.classes = list(side["classes"])
        self.temperature = side["temperature"]
        self.none_threshold = side["none_threshold"]
        self.session = onnx_session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT] or OUTPUT not in [o.name for o in outputs]:
            raise AudiomnistError(
                f"{path}: the graph's input/output names do not match its sidecar "
                f"({[i.name for i in inputs]} -> {[o.name for o in outputs]}); re-export it"
            )
        width = inputs[0].shape[-1]
        if isinstance(width, int) and width != self.info.audio.num_samples:
            raise AudiomnistError(
                f"{path}: the graph takes {width} samples but its config's window is {self.info.audio.num_samples}"
            )
        out_width = next(o for o in outputs if o.name == OUTPUT).shape[-1]
        if isinstance(out_width, int) and out_width != len(self.classes):
            raise AudiomnistError(
                f"{path}: the network has {out_width} outputs but its sidecar names {len(self.classes)} classes"
            )

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        (p,) = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(windows, dtype=np.float32)})
        return p
