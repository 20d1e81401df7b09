"""Rebuild the shipped default model: the default recipe trained on every FSDD speaker, nothing held out.

    python tools/make_model.py [--data PATH] [--epochs N] [--out src/audiomnist/pretrained/default.pt] [--runs DIR]
    python tools/make_model.py --onnx-only      # re-export the shipped checkpoint only (no training)

Trains with `audiomnist train --val-frac 0 --test-frac 0 --epochs 60` (all 6 speakers in training; 60 epochs, not
the default 20: see experiments/fsdd-loso/README.md), keeps the last epoch's weights (the end of the one-cycle
schedule; there is no validation set to pick another) without optimizer state, and writes them to --out with a
metadata file beside it (same name, .json). Accuracy on unseen speakers comes from
`audiomnist cv --data PATH --folds loso --epochs 60` with the same recipe; copy it into MODEL_CARD.md.
The data is --data, else $FSDD, else ../shared/data/fsdd/recordings beside the repository.

The checkpoint is also exported as the whole-pipeline ONNX model beside it (default.onnx + default.onnx.json), which
`audiomnist predict` uses where torch is not installed; --onnx-only redoes just that from the existing checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from audiomnist import __version__, cli
from audiomnist.checkpoint import load_checkpoint, save_checkpoint
from audiomnist.export import export_onnx, parity, sample_windows
from audiomnist.models import count_parameters
from audiomnist.paths import atomic_write_text, runs_home
from audiomnist.checkpoint import load_trained

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "audiomnist" / "pretrained" / "default.pt"
SHIPPED_KEYS = ("model", "model_args", "classes", "target", "config", "epoch")


def default_data() -> Path:
    return Path(os.environ.get("FSDD") or REPO.parent / "shared" / "data" / "fsdd" / "recordings")


# FSDD is small, so an epoch is few steps; longer training scored higher leave-one-speaker-out
# (experiments/fsdd-loso/README.md).
EPOCHS = 60


def recipe(data: str, epochs: int | None) -> list[str]:
    """`audiomnist train` arguments of the recipe: defaults but for the epochs, every speaker in training."""
    epochs = EPOCHS if epochs is None else epochs
    return ["train", "--data", data, "--val-frac", "0", "--test-frac", "0", "--seed", "0", "--epochs", str(epochs)]


def portable(path: str) -> str:
    """A data path as recorded in the shipped model: relative to the repository where possible, not this machine's."""
    return os.path.relpath(path, REPO) if Path(path).is_absolute() else path


def ship(run_dir: Path, out: Path, command: list[str], seconds: float) -> dict:
    """Copy run_dir/last.pt to `out` without optimizer state; write the metadata `out`.json; return it."""
    state = load_checkpoint(run_dir / "last.pt")
    shipped = {k: state[k] for k in SHIPPED_KEYS}
    shipped["config"] = {**shipped["config"], "data": [portable(d) for d in shipped["config"]["data"]]}
    shipped["model_state"] = "last"
    save_checkpoint(shipped, out)
    net, cfg, classes = load_trained(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split, last = metrics["split"], metrics["history"][-1]
    meta = {
        "name": out.stem,
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "bytes": out.stat().st_size,
        "model": cfg.model,
        "parameters": count_parameters(net),
        "classes": classes,
        "data": {
            "name": "FSDD (free-spoken-digit-dataset)",
            "path": shipped["config"]["data"],
            "clips": split["train_clips"],
            "speakers": split["train_speakers"],
            "held_out": "none: every speaker is in training; see MODEL_CARD.md for leave-one-speaker-out accuracy",
        },
        "recipe": {"command": "audiomnist " + " ".join(command), "epochs": cfg.epochs, "kept": "last epoch"},
        "final_epoch": {k: last[k] for k in ("epoch", "train_loss", "train_acc")},
        "train_seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "audiomnist": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "config": shipped["config"],
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return meta


def ship_onnx(checkpoint: Path) -> tuple[Path, float]:
    """Export `checkpoint` as the whole-pipeline ONNX model beside it; return it and its largest probability
    difference from the torch pipeline on the shipped sample (export.parity)."""
    net, cfg, classes = load_trained(checkpoint)
    out = export_onnx(net, cfg, classes, checkpoint.with_suffix(".onnx"))
    return out, parity(net, cfg, out, sample_windows(cfg))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data(), help="FSDD recordings folder (default: $FSDD or ../shared/data/fsdd/recordings)")
    p.add_argument("--epochs", type=int, help=f"override the recipe's {EPOCHS} epochs (for a quick check only)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"shipped checkpoint to write (default {DEFAULT_OUT.relative_to(REPO)})")
    p.add_argument("--runs", type=Path, help="keep the training run folder here (default: $AUDIOMNIST_RUNS or ./runs)")
    p.add_argument("--onnx-only", action="store_true",
                   help="only export the existing --out checkpoint to ONNX beside it")
    args = p.parse_args(argv)
    if args.onnx_only:
        out, diff = ship_onnx(args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
        return 0 if diff <= 1e-4 else 1
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: no FSDD recordings there; pass --data PATH or set FSDD")
    runs = args.runs or runs_home()
    before = set(runs.glob("*-default"))
    data = args.data.resolve()
    extra = ["--name", "default", "--runs", str(runs)] + ([] if sys.stderr.isatty() else ["--no-progress"])
    t0 = time.time()
    if cli.main(recipe(str(data), args.epochs) + extra) != 0:
        return 1
    (run_dir,) = set(runs.glob("*-default")) - before
    meta = ship(run_dir, args.out, recipe(portable(str(data)), args.epochs), time.time() - t0)
    print(f"wrote {args.out} ({meta['bytes'] / 1e3:.0f} kB, sha256 {meta['sha256'][:12]}...) and {args.out.with_suffix('.json')}")
    onnx, diff = ship_onnx(args.out)
    print(f"wrote {onnx} ({onnx.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
    print(f"final epoch: train accuracy {meta['final_epoch']['train_acc']:.4f}; run folder {run_dir}")
    print(f"accuracy on unseen speakers: audiomnist cv --data {args.data} --folds loso --epochs {EPOCHS}  (then update MODEL_CARD.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
