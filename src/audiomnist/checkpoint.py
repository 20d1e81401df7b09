"""Checkpoints: plain dicts of tensors and primitives, written atomically, loaded with weights_only=True; where a
model named by the user lives (run folder, file, shipped name), and the trained network with its config."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import AudiomnistError
from .onnx_model import PRETRAINED, Calibration, check_none_threshold, check_temperature, resolve_model  # noqa: F401  (PRETRAINED: where checkpoints are found)
from .paths import atomic_write
from .runconfig import TrainConfig, build_model, config_from_dict

FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` via temp file + rename, so a kill never leaves a half-written checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


def _one_line(text: str, limit: int = 200) -> str:
    """First line of a library message, without ANSI escapes or other control characters, at most `limit` chars."""
    line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).strip().splitlines()[0] if text.strip() else ""
    line = "".join(c if c.isprintable() else " " for c in line)
    return line[:limit]


def _unsafe_reason(message: str) -> str:
    """Why the safe unpickler refused the file, in our words: the Python object it would have imported, if named."""
    m = re.search(r"GLOBAL\s+([\w.]+)", message)
    if m:
        return f"it would import {m.group(1)}, and loading it could run code"
    return "it holds data other than tensors and plain values, and loading it could run code"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code: anything but tensors and primitives is refused."""
    path = Path(path)
    if not path.is_file():
        raise AudiomnistError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it is about to refuse anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # PyTorch's own text advises weights_only=False, i.e. running the file's code: never repeat that.
        raise AudiomnistError(
            f"{path}: refused to load: not a safe checkpoint ({_unsafe_reason(str(e))}); "
            "only checkpoints written by audiomnist can be used"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise AudiomnistError(f"{path}: not a readable checkpoint ({_one_line(str(e))})") from None
    except Exception:  # on garbage the unpickler can raise anything (KeyError, ValueError, ...), saying nothing useful
        raise AudiomnistError(f"{path}: not a readable checkpoint (not a file written by torch.save)") from None
    if not isinstance(state, dict) or "model" not in state:
        raise AudiomnistError(f"{path}: not an audiomnist checkpoint (no 'model' entry)")
    return state


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_trained(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, list[str]]:
    """(network in eval mode, TrainConfig, class names) from a checkpoint file or a run folder (its best.pt)."""
    return load_calibrated(path, device)[:3]


def temperature_of(state: dict[str, Any], where: str | os.PathLike) -> float:
    """The checkpoint's softmax temperature (fitted on the validation speakers); 1.0 for checkpoints without one."""
    t = state.get("temperature", 1.0)
    return check_temperature(t.item() if isinstance(t, torch.Tensor) and t.numel() == 1 else t, where)


def calibration_of(state: dict[str, Any], where: str | os.PathLike) -> Calibration:
    """The checkpoint's temperature and stored p(none) threshold (a model built by tools/make_model.py has one)."""
    return Calibration(temperature_of(state, where), check_none_threshold(state.get("none_threshold"), where))


def load_calibrated(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, list[str], Calibration]:
    """load_trained and its Calibration (temperature 1.0 and no threshold when the checkpoint has none)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    state = load_checkpoint(path, map_location=device)
    try:
        cfg = config_from_dict(state["config"])
        net = build_model(cfg, len(state["classes"]))
        net.load_state_dict(state["model"])
    except AudiomnistError as e:
        raise AudiomnistError(f"{path}: {e}") from None
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = f"missing entry {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        raise AudiomnistError(f"{path}: checkpoint does not match this version of audiomnist ({reason})") from None
    return net.to(device).eval(), cfg, list(state["classes"]), calibration_of(state, path)


def init_from(model: torch.nn.Module, spec: str | os.PathLike) -> list[str]:
    """Copy the weights of a run folder, checkpoint or shipped model into `model` wherever name and shape match
    (pretrain -> fine-tune); the parameters left as they were (e.g. an output layer for other classes) are returned
    by name."""
    state = load_checkpoint(resolve_model(spec, prefer="torch"))["model"]
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not take:
        raise AudiomnistError(f"{spec}: no layer of it matches this model ({type(model).__name__})")
    model.load_state_dict(take, strict=False)
    return sorted(k for k in own if k not in take)
