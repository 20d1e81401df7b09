"""Checkpoints: plain dicts of tensors and primitives, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import AudiomnistError
from .paths import atomic_write

FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` via temp file + rename, so a kill never leaves a half-written checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code: anything but tensors and primitives is refused."""
    path = Path(path)
    if not path.is_file():
        raise AudiomnistError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e).lower() and "unsupported global" not in str(e).lower():
            raise AudiomnistError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
        raise AudiomnistError(
            f"{path}: refused to load: it is not a plain-weights checkpoint "
            f"(weights_only=True rejected it: {str(e).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise AudiomnistError(f"{path}: not a readable checkpoint ({e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise AudiomnistError(f"{path}: not an audiomnist checkpoint (no 'model' entry)")
    return state
