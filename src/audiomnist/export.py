"""Export a trained model to ONNX as one graph, waveform window to probabilities, with a JSON sidecar.

    audiomnist export [RUN_DIR|CHECKPOINT|NAME] --onnx OUT.onnx
    audiomnist export [RUN_DIR|CHECKPOINT|NAME] --web DIR [--ort-web PATH]   a page running it in the browser
                                                                          (a digit-string model: a number page)

The graph (onnx_model.FORMAT 2) takes "waveform": float32 (batch, num_samples) windows, mono at the model's sample
rate, any batch size, and gives "probabilities" (batch, classes): STFT (a conv1d over a fixed DFT-times-window
basis, features.DftLogMel), mel, log, top_db floor, per-clip normalisation, the network and softmax of its logits
divided by the checkpoint's temperature (calibration fitted at training; recorded in the sidecar). The window is
fixed (cfg.audio.num_samples): placing a clip in it (centring the window on the word, padding) is
Classifier.windows in numpy (audio.centre_on_speech + audio.fit_windows), and a fixed length keeps the graph
free of data-dependent shapes. OUT.onnx.json holds the config, classes and input/output names. After writing,
the export is checked against the torch pipeline (features.LogMel + network + softmax) on the shipped sample.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .audio import fit_windows, load_audio, prepare
from .catalog import sample_root
from .checkpoint import load_calibrated, load_checkpoint
from .config import save_json, to_dict
from .ctc import STRING_CLASSES
from .errors import AudiomnistError
from .features import build_frontend
from .onnx_model import (
    FORMAT,
    INPUT,
    OUTPUT,
    Calibration,
    ModelInfo,
    OnnxPipeline,
    onnx_session,
    read_sidecar,
    resolve_model,
    sidecar_path,
)
from .paths import atomic_write, data_home, short_hash
from .runconfig import TrainConfig
from .string_model import TASK, StringNet, StringTrainConfig, is_string_checkpoint
from .string_model import load as load_string_model
from .string_model import probabilities as string_probabilities
from .web_export import ORT_WEB_VERSION, RESCORER, write_web

OPSET = 18
PARITY_TOL = 1e-4


class Pipeline(nn.Module):
    """(B, num_samples) windows -> (B, classes) probabilities: the exportable front-end, the network, softmax of the
    logits divided by the temperature."""

    def __init__(self, net: nn.Module, cfg: TrainConfig, temperature: float = 1.0):
        super().__init__()
        self.frontend = build_frontend(cfg.features, cfg.audio.sample_rate, exportable=True)
        self.net = net
        self.temperature = float(temperature)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.frontend(wave))
        return torch.softmax(logits if self.temperature == 1.0 else logits / self.temperature, dim=1)


@torch.inference_mode()
def torch_probabilities(net: nn.Module, cfg: TrainConfig, windows: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """What the PyTorch pipeline gives for (B, num_samples) windows: training's front-end, the network, softmax."""
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate)
    return torch.softmax(net(frontend(torch.from_numpy(windows))).float() / temperature, dim=1).numpy()


BATCH_AXES = ({0: "batch"}, {0: "batch"})  # (input, output) dynamic axes of a digit model: any batch size
STRING_AXES = ({1: "samples"}, {0: "frames"})  # a string model: one utterance of any length


def _dynamo_bytes(net: torch.nn.Module, example: torch.Tensor, axes: tuple[dict, dict]) -> bytes:
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=OPSET,
                dynamic_shapes=({i: torch.export.Dim(name) for i, name in axes[0].items()},),
                dynamo=True,
                verbose=False,
            )
        return program.model_proto.SerializeToString()
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torchscript_bytes(net: torch.nn.Module, example: torch.Tensor, axes: tuple[dict, dict]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")  # slicing a variable-length input, harmless
        torch.onnx.export(
            net,
            (example,),
            buf,
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamic_axes={INPUT: axes[0], OUTPUT: axes[1]},
            dynamo=False,
        )
    return buf.getvalue()


def _onnx_bytes(net: torch.nn.Module, example: torch.Tensor, axes: tuple[dict, dict] = BATCH_AXES) -> tuple[bytes, str]:
    """The serialised model and the exporter that made it.

    torch.export-based ("dynamo") when onnxscript is installed, which that exporter needs; otherwise, or if it
    fails on this network, the TorchScript-based exporter, which needs nothing beyond torch.
    """
    if importlib.util.find_spec("onnxscript") is not None:
        try:
            return _dynamo_bytes(net, example, axes), "dynamo"
        except Exception as e:  # torch.export and onnxscript raise many types; the fallback below covers them all
            warnings.warn(
                f"dynamo ONNX export failed ({type(e).__name__}: {e}); using the TorchScript exporter", stacklevel=2
            )
    return _torchscript_bytes(net, example, axes), "torchscript"


def export_onnx(
    net: nn.Module,
    cfg: TrainConfig,
    classes: list[str],
    out_path: str | os.PathLike,
    temperature: float = 1.0,
    none_threshold: float | None = None,
) -> Path:
    """Write the whole pipeline around `net` (CPU, dynamic batch; logits divided by `temperature` in the graph) to
    out_path and its sidecar to out_path + ".json", both atomically; the sidecar keeps the model's none_threshold."""
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise AudiomnistError(f"{out}: an ONNX export's file name must end in .onnx")
    pipeline = Pipeline(copy.deepcopy(net).cpu().eval(), cfg, temperature).eval()
    n = cfg.audio.num_samples
    example = 0.1 * torch.randn((2, n), generator=torch.Generator().manual_seed(0))
    data, exporter = _onnx_bytes(pipeline, example)
    with atomic_write(out, "wb") as f:
        f.write(data)
    save_json(
        {
            "format": FORMAT,
            "model": cfg.model,
            "classes": list(classes),
            "temperature": float(temperature),  # applied in the graph: its probabilities are already calibrated
            "none_threshold": none_threshold,  # applied by whoever reads the probabilities (infer, the web page)
            "input": {
                "name": INPUT,
                "shape": ["batch", n],
                "dtype": "float32",
                "sample_rate": cfg.audio.sample_rate,
                "what": "mono windows at sample_rate, clips placed as audiomnist.audio.fit_windows does",
            },
            "output": {"name": OUTPUT, "shape": ["batch", len(classes)]},
            "opset": OPSET,
            "exporter": exporter,
            "torch": torch.__version__,
            "audiomnist": __version__,
            "config": to_dict(cfg),
        },
        sidecar_path(out),
    )
    return out


def export_string_onnx(net: nn.Module, cfg: StringTrainConfig, out_path: str | os.PathLike) -> Path:
    """A digit-string model as one graph: "waveform" (1, samples) of any length at the model's rate ->
    "probabilities" (frames, 11) over ctc.STRING_CLASSES; the sidecar says "task": "strings"."""
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise AudiomnistError(f"{out}: an ONNX export's file name must end in .onnx")
    pipeline = StringNet(copy.deepcopy(net).cpu().eval(), cfg, exportable=True).eval()
    example = 0.1 * torch.randn((1, 2 * cfg.audio.sample_rate), generator=torch.Generator().manual_seed(0))
    data, exporter = _onnx_bytes(pipeline, example, STRING_AXES)
    with atomic_write(out, "wb") as f:
        f.write(data)
    save_json(
        {
            "format": FORMAT,
            "task": TASK,
            "model": cfg.model,
            "classes": STRING_CLASSES,
            "input": {"name": INPUT, "shape": [1, "samples"], "dtype": "float32",
                      "sample_rate": cfg.audio.sample_rate, "what": "one mono utterance at sample_rate"},
            "output": {"name": OUTPUT, "shape": ["frames", len(STRING_CLASSES)],
                       "what": "CTC probabilities, a frame every ctc.timing(config).frame_s; decode: audiomnist.ctc"},
            "opset": OPSET, "exporter": exporter, "torch": torch.__version__, "audiomnist": __version__,
            "config": to_dict(cfg),
        },
        sidecar_path(out),
    )  # fmt: skip
    return out


def string_parity(net: nn.Module, cfg: StringTrainConfig, onnx_path: str | os.PathLike, waves: list) -> float:
    """Largest |ONNX Runtime - PyTorch| probability over utterances of different lengths."""
    session = onnx_session(onnx_path, threads=1)
    ref = string_probabilities(StringNet(net.cpu().eval(), cfg), waves)
    got = [session.run([OUTPUT], {INPUT: np.asarray(w, np.float32)[None]})[0] for w in waves]
    return max(float(np.abs(a - b).max()) for a, b in zip(got, ref))


def _export_strings(path: Path, args: argparse.Namespace) -> int:
    net, cfg = load_string_model(path)
    out = export_string_onnx(net, cfg, args.onnx or args.web / "model.onnx")
    rng = np.random.default_rng(0)
    clips = [sample_windows_flat(cfg.audio.sample_rate, k) for k in (1, 3, 6)]
    waves = [np.concatenate(c) if c else 0.1 * rng.standard_normal(cfg.audio.sample_rate) for c in clips]
    diff = string_parity(net, cfg, out, waves)
    shapes = f"input {INPUT!r} [1, samples] at {cfg.audio.sample_rate} Hz, output {OUTPUT!r} [frames, 11]"
    return _report(out, "digit strings", shapes, f"{len(waves)} utterances", diff, args)


def _write_web(out: Path, args: argparse.Namespace) -> None:
    side, ears = read_sidecar(out), None
    if side.get("task") == "strings":
        rate = ModelInfo.from_config(side["config"]).audio.sample_rate
        ears = RESCORER if ModelInfo.from_config(read_sidecar(RESCORER)["config"]).audio.sample_rate == rate else None
        how = "each digit heard again by the shipped single-digit model" if ears else "the string model alone"
        print(f"the page decodes numbers with {how}")
    index = write_web(out, args.web, args.ort_web, args.ort_web_version, rescorer=ears)
    print(
        f"wrote {index} with the model and onnxruntime-web; serve the folder, e.g. "
        f"python -m http.server -d {args.web} 8001, and open http://127.0.0.1:8001/"
    )


def sample_windows_flat(sample_rate: int, n: int) -> list[np.ndarray]:
    """The first n clips of the shipped sample at sample_rate, whole."""
    return [load_audio(p, sample_rate) for p in sorted(sample_root().glob("*/*.flac"))[:n]]


def cached_export(
    checkpoint: str | os.PathLike,
    net: nn.Module,
    cfg: TrainConfig,
    classes: list[str],
    calibration: Calibration = Calibration(),
) -> Path:
    """The ONNX export of `checkpoint` under data_home()/onnx, keyed by its content: made once, then reused.

    Exporting beside the checkpoint would fail for a read-only install (the shipped model lives in the package).
    """
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    out = data_home() / "onnx" / f"{short_hash(digest, torch.__version__, OPSET, FORMAT)}.onnx"
    if out.is_file() and sidecar_path(out).is_file():
        return out
    try:
        return export_onnx(net, cfg, classes, out, *calibration)
    except OSError as e:
        raise AudiomnistError(
            f"{out.parent}: cannot write the ONNX export ({e}); set AUDIOMNIST_HOME to a writable folder"
        ) from None


def sample_windows(cfg: TrainConfig, limit: int = 40) -> np.ndarray:
    """Windows of the shipped sample's real (synthetic-voice) clips at the model's rate, placed for evaluation."""
    paths = sorted(sample_root().glob("*/*.flac"))
    a = cfg.audio
    picked = paths[:: max(1, len(paths) // limit)][:limit]
    clips = [prepare(load_audio(p, a.sample_rate, a.max_seconds, a.resample_quality), a)[0] for p in picked]
    return fit_windows(clips, a)


def parity(
    net: nn.Module, cfg: TrainConfig, onnx_path: str | os.PathLike, windows: np.ndarray, temperature: float = 1.0
) -> float:
    """Largest |ONNX Runtime - PyTorch| probability over the windows, the torch side being features.LogMel."""
    got = OnnxPipeline(onnx_path, threads=1).probabilities(windows)
    return float(np.abs(got - torch_probabilities(net.cpu().eval(), cfg, windows, temperature)).max())


def cmd_export(args: argparse.Namespace) -> int:
    if args.onnx is None and args.web is None:
        raise AudiomnistError("say where to write: --onnx OUT.onnx, --web DIR, or both")
    path = resolve_model(args.model, prefer="torch")
    if path.suffix == ".onnx":
        raise AudiomnistError(f"{path}: already an ONNX model")
    if is_string_checkpoint(load_checkpoint(path)):
        return _export_strings(path, args)
    net, cfg, classes, calibration = load_calibrated(path, "cpu")
    out = export_onnx(net, cfg, classes, args.onnx or args.web / "model.onnx", *calibration)
    windows = sample_windows(cfg)
    diff = parity(net, cfg, out, windows, calibration.temperature)
    shapes = f"input {INPUT!r} [batch, {cfg.audio.num_samples}] at {cfg.audio.sample_rate} Hz, output {OUTPUT!r}"
    return _report(out, f"{len(classes)} classes", shapes, f"{len(windows)} sample clips", diff, args)


def _report(out: Path, what: str, shapes: str, checked: str, diff: float, args: argparse.Namespace) -> int:
    """Say what was written and how close it is to torch; exit status 1 past PARITY_TOL, else write --web too."""
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, opset {OPSET}) and {sidecar_path(out)} ({what})")
    print(f"{shapes}; onnxruntime vs pytorch on {checked}: max probability diff {diff:.2e}")
    if diff > PARITY_TOL:
        print(f"warning: the export differs from pytorch by {diff:.2e} (> {PARITY_TOL:g})")
        return 1
    if args.web is not None:
        _write_web(out, args)
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", metavar="RUN_DIR|CHECKPOINT|NAME", help="what to export (default: the shipped model)"
    )
    p.add_argument(
        "--onnx", type=Path, metavar="OUT.onnx", help="output file; the sidecar OUT.onnx.json is written beside it"
    )
    p.add_argument(
        "--web",
        type=Path,
        metavar="DIR",
        help="write a static page that runs the model in the browser (index.html, model.onnx, ort/)",
    )
    p.add_argument(
        "--ort-web",
        metavar="PATH",
        help="onnxruntime-web tarball (npm pack) or unpacked package to take; default: npm pack it",
    )
    p.add_argument("--ort-web-version", default=ORT_WEB_VERSION, help="onnxruntime-web version npm fetches")
    p.set_defaults(func=cmd_export)
