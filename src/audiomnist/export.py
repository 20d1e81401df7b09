"""Export a trained network to ONNX with a JSON sidecar holding its config and class names.

    audiomnist export [RUN_DIR|CHECKPOINT|NAME] --onnx OUT.onnx

Only the network is exported (input "features", output "logits", any batch size): the log-mel front-end stays
in torch inside Classifier, which rebuilds it from the sidecar OUT.onnx.json, so `audiomnist predict --model
OUT.onnx` needs nothing but the two files. For a waveform model (audionet) "features" is the normalised waveform.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import load_trained, resolve_model
from .config import save_json, to_dict
from .errors import AudiomnistError
from .features import build_frontend
from .paths import atomic_write, data_home, short_hash
from .runconfig import TrainConfig, config_from_dict

OPSET = 18
INPUT, OUTPUT = "features", "logits"
FORMAT = 1


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def input_shape(cfg: TrainConfig) -> tuple[int, ...]:
    """Shape of one clip's network input, (1, 1, n_mels, frames) or (1, 1, samples): the front-end's output."""
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate)
    with torch.no_grad():
        return tuple(frontend(torch.zeros(1, cfg.audio.num_samples)).shape)


def _dynamo_bytes(net: torch.nn.Module, example: torch.Tensor) -> bytes:
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, (example,), input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
            )
        return program.model_proto.SerializeToString()
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torchscript_bytes(net: torch.nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, (example,), buf, input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET,
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, dynamo=False,
        )
    return buf.getvalue()


def _onnx_bytes(net: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """The serialised model and the exporter that made it.

    torch.export-based ("dynamo") when onnxscript is installed, which that exporter needs; otherwise, or if it
    fails on this network, the TorchScript-based exporter, which needs nothing beyond torch.
    """
    if importlib.util.find_spec("onnxscript") is not None:
        try:
            return _dynamo_bytes(net, example), "dynamo"
        except Exception as e:  # torch.export and onnxscript raise many types; the fallback below covers them all
            warnings.warn(f"dynamo ONNX export failed ({type(e).__name__}: {e}); using the TorchScript exporter")
    return _torchscript_bytes(net, example), "torchscript"


def export_onnx(net: torch.nn.Module, cfg: TrainConfig, classes: list[str], out_path: str | os.PathLike) -> Path:
    """Write `net` (eval mode, CPU, dynamic batch) to out_path and its sidecar to out_path + ".json"; both atomically."""
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise AudiomnistError(f"{out}: an ONNX export's file name must end in .onnx")
    net = copy.deepcopy(net).cpu().eval()
    shape = input_shape(cfg)
    example = torch.randn((2, *shape[1:]), generator=torch.Generator().manual_seed(0))
    data, exporter = _onnx_bytes(net, example)
    with atomic_write(out, "wb") as f:
        f.write(data)
    save_json(
        {
            "format": FORMAT,
            "model": cfg.model,
            "classes": list(classes),
            "input": {"name": INPUT, "shape": ["batch", *shape[1:]], "kind": cfg.features.kind},
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


def read_sidecar(onnx_path: str | os.PathLike) -> dict:
    """The sidecar of an exported model, checked: its config must rebuild a TrainConfig and classes be names."""
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
    try:
        config_from_dict(data["config"])
    except (TypeError, ValueError) as e:
        raise AudiomnistError(f"{side}: invalid 'config' ({e})") from None
    return data


def cached_export(checkpoint: str | os.PathLike, net: torch.nn.Module, cfg: TrainConfig, classes: list[str]) -> Path:
    """The ONNX export of `checkpoint` under data_home()/onnx, keyed by its content: made once, then reused.

    Exporting beside the checkpoint would fail for a read-only install (the shipped model lives in the package).
    """
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    out = data_home() / "onnx" / f"{short_hash(digest, torch.__version__, OPSET, FORMAT)}.onnx"
    if out.is_file() and sidecar_path(out).is_file():
        return out
    try:
        return export_onnx(net, cfg, classes, out)
    except OSError as e:
        raise AudiomnistError(f"{out.parent}: cannot write the ONNX export ({e}); set AUDIOMNIST_HOME to a writable folder") from None


def max_abs_diff(net: torch.nn.Module, onnx_path: str | os.PathLike, x: torch.Tensor) -> float:
    """Largest |ONNX Runtime - PyTorch| logit on the input batch x: how faithful the export is."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {INPUT: x.numpy()})
    with torch.no_grad():
        want = copy.deepcopy(net).cpu().eval()(x).numpy()
    return float(np.abs(got - want).max())


def cmd_export(args: argparse.Namespace) -> int:
    path = resolve_model(args.model)
    if path.suffix == ".onnx":
        raise AudiomnistError(f"{path}: already an ONNX model")
    net, cfg, classes = load_trained(path, "cpu")
    out = export_onnx(net, cfg, classes, args.onnx)
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate)
    with torch.no_grad():
        x = frontend(0.1 * torch.randn(5, cfg.audio.num_samples, generator=torch.Generator().manual_seed(0)))
    diff = max_abs_diff(net, out, x)
    side = read_sidecar(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {side['exporter']} exporter, opset {OPSET}) and {sidecar_path(out)}")
    print(f"input {INPUT!r} {side['input']['shape']}, output {OUTPUT!r} {side['output']['shape']}; "
          f"onnxruntime vs pytorch on 5 random clips: max abs diff {diff:.2e}")
    if diff > 1e-4:
        print(f"warning: the export differs from pytorch by {diff:.2e} (> 1e-4)")
        return 1
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="RUN_DIR|CHECKPOINT|NAME", help="what to export (default: the shipped model)")
    p.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx", help="output file; the sidecar OUT.onnx.json is written beside it")
    p.set_defaults(func=cmd_export)
