"""Rebuild the shipped default model: the default network trained on every FSDD speaker plus 600 synthetic voices.

    python tools/make_model.py [--data PATH] [--synth DIR|none] [--epochs N] [--out ...default.pt] [--runs DIR]
    python tools/make_model.py --onnx-only      # re-export the shipped checkpoint only (no training)

The synthetic voices are made first when --synth is missing (`audiomnist data synth DIR --voices 600 --takes 2
--seed 0`: the same files for the same seed). Trains with `audiomnist train --data FSDD --data SYNTH --data-weight 4
--data-weight 1 --val-frac 0 --test-frac 0 --epochs 8` (every speaker in training), keeps the last epoch's weights
(the end of the one-cycle schedule; there is no validation set to pick another) without optimizer state, and writes
them to --out with a metadata file beside it (same name, .json). Accuracy on unseen speakers comes from the same
recipe under `audiomnist cv ... --fold-folders 1 --folds loso` (experiments/voices/README.md); copy it into
MODEL_CARD.md. The data is --data, else $FSDD, else ../shared/data/fsdd/recordings beside the repository.

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
from audiomnist.checkpoint import load_checkpoint, load_trained, save_checkpoint
from audiomnist.export import export_onnx, parity, sample_windows
from audiomnist.models import count_parameters
from audiomnist.paths import atomic_write_text, data_home, runs_home

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "audiomnist" / "pretrained" / "default.pt"
SHIPPED_KEYS = ("model", "model_args", "classes", "target", "config", "epoch")


def default_data() -> Path:
    return Path(os.environ.get("FSDD") or REPO.parent / "shared" / "data" / "fsdd" / "recordings")


# With the synthetic voices an epoch is six times FSDD alone: a few epochs see every real clip many times.
EPOCHS = 8
# Each FSDD clip is drawn four times as often as a synthetic one: real voices stay close to half of training.
REAL_WEIGHT = 4
SYNTH_ARGS = ["--voices", "600", "--takes", "2", "--seed", "0"]


def default_synth() -> Path:
    return data_home() / "datasets" / "synth-voices-600"


def recipe(data: str, synth: str | None, epochs: int | None) -> list[str]:
    """`audiomnist train` arguments of the recipe: defaults but for the data and epochs, every speaker in training."""
    epochs = EPOCHS if epochs is None else epochs
    sources = ["--data", data] + (
        ["--data", synth, "--data-weight", str(REAL_WEIGHT), "--data-weight", "1"] if synth else []
    )
    return ["train", *sources, "--val-frac", "0", "--test-frac", "0", "--seed", "0", "--epochs", str(epochs)]


def portable(path: str) -> str:
    """A data path as recorded in the shipped model: relative to the repository or to $AUDIOMNIST_HOME where possible,
    not this machine's."""
    if not Path(path).is_absolute():
        return path
    if Path(path).is_relative_to(data_home()):
        return "$AUDIOMNIST_HOME/" + Path(path).relative_to(data_home()).as_posix()
    return os.path.relpath(path, REPO)


def ship(run_dir: Path, out: Path, command: list[str], seconds: float, synth: str | None = None) -> dict:
    """Copy run_dir/last.pt to `out` without optimizer state; write the metadata `out`.json; return it."""
    state = load_checkpoint(run_dir / "last.pt")
    shipped = {k: state[k] for k in SHIPPED_KEYS}
    # The synthetic folder is recorded by the name it was given (it may be a link), the others by portable().
    named = {str(Path(synth).resolve()): portable(synth)} if synth else {}
    data = [named.get(str(Path(d).resolve()), portable(d)) for d in shipped["config"]["data"]]
    shipped["config"] = {**shipped["config"], "data": data}
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
            "name": "FSDD (free-spoken-digit-dataset)"
            + (" + synthetic voices" if len(shipped["config"]["data"]) > 1 else ""),
            "path": shipped["config"]["data"],
            "clips": split["train_clips"],
            "speakers": len(split["train_speakers"]),
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
    p.add_argument(
        "--data",
        type=Path,
        default=default_data(),
        help="FSDD recordings folder (default: $FSDD or ../shared/data/fsdd/recordings)",
    )
    p.add_argument(
        "--synth",
        default=str(default_synth()),
        help="synthetic voices folder, made first when missing; 'none' trains on --data alone "
        "(default: $AUDIOMNIST_HOME/datasets/synth-voices-600)",
    )
    p.add_argument("--epochs", type=int, help=f"override the recipe's {EPOCHS} epochs (for a quick check only)")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"shipped checkpoint to write (default {DEFAULT_OUT.relative_to(REPO)})",
    )
    p.add_argument("--runs", type=Path, help="keep the training run folder here (default: $AUDIOMNIST_RUNS or ./runs)")
    p.add_argument(
        "--onnx-only", action="store_true", help="only export the existing --out checkpoint to ONNX beside it"
    )
    args = p.parse_args(argv)
    if args.onnx_only:
        out, diff = ship_onnx(args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
        return 0 if diff <= 1e-4 else 1
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: no FSDD recordings there; pass --data PATH or set FSDD")
    synth = None if args.synth == "none" else str(Path(args.synth).absolute())
    if synth and not Path(synth).is_dir() and cli.main(["data", "synth", synth, *SYNTH_ARGS]) != 0:
        return 1
    runs = args.runs or runs_home()
    before = set(runs.glob("*-default"))
    data = args.data.resolve()
    extra = ["--name", "default", "--runs", str(runs)] + ([] if sys.stderr.isatty() else ["--no-progress"])
    t0 = time.time()
    if cli.main(recipe(str(data), synth, args.epochs) + extra) != 0:
        return 1
    (run_dir,) = set(runs.glob("*-default")) - before
    command = recipe(portable(str(data)), synth and portable(synth), args.epochs)
    meta = ship(run_dir, args.out, command, time.time() - t0, synth)
    print(
        f"wrote {args.out} ({meta['bytes'] / 1e3:.0f} kB, sha256 {meta['sha256'][:12]}...) and "
        f"{args.out.with_suffix('.json')}"
    )
    onnx, diff = ship_onnx(args.out)
    print(f"wrote {onnx} ({onnx.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
    print(f"final epoch: train accuracy {meta['final_epoch']['train_acc']:.4f}; run folder {run_dir}")
    print(
        "accuracy on unseen speakers: the same recipe under `audiomnist cv ... --fold-folders 1 --folds loso` "
        "(experiments/voices/README.md; then update MODEL_CARD.md)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
