"""Rebuild the shipped default model: a small head (emb-head) over Google's frozen speech_embedding encoder, trained on
every FSDD speaker plus 600 synthetic voices, with a "none" class learnt from non-digits (other-language digit words,
synthetic English non-digit words, noise).

    python tools/make_model.py [--data PATH] [--synth DIR|none] [--negatives DIR|none] [--epochs N] [--out ...]
    python tools/make_model.py --onnx-only      # re-export the shipped checkpoint only (no training)

The synthetic voices are made first when --synth is missing (`audiomnist data synth DIR --voices 600 --takes 2
--seed 0 --no-perturb warp`: the same files for the same seed), and so are the synthetic non-digit words
(tools/make_negatives.py: the first 500 of the shipped recipe's warped voices say 24 words each of
experiments/no-digit/words-common.txt, plus 1,800 noise clips; voices 500-599 stay free for held-out checks). Trains
with `audiomnist train --model emb-head --data FSDD --data SYNTH --negative BENGALI --negative UKRAINIAN --negative NEG
--data-weight 16 1 0.25 0.25 1 --val-frac 0 --test-frac 0 --epochs 10` (every speaker in training), keeps the last
epoch's weights (the end of the one-cycle schedule; there is no validation set to pick another) without optimizer
state, and writes them to --out with a metadata file beside it (same name, .json), with the recipe's calibration:
TEMPERATURE and NONE_THRESHOLD, both measured on the recipe's held-out folds (experiments/embedding/README.md). The
data is --data, else $FSDD, else ../shared/data/fsdd/recordings beside the repository; the other-language voices are
beside it (../bengali, ../ukrainian of the shared data).

The checkpoint is also exported as the whole-pipeline ONNX model beside it (default.onnx + default.onnx.json), which
`audiomnist predict` uses where torch is not installed; --onnx-only redoes just that from the existing checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from audiomnist import __version__, cli
from audiomnist.checkpoint import load_calibrated, load_checkpoint, load_trained, save_checkpoint
from audiomnist.export import export_onnx, parity, sample_windows
from audiomnist.models import count_parameters
from audiomnist.paths import atomic_write_text, data_home, runs_home

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "audiomnist" / "pretrained" / "default.pt"
SHIPPED_KEYS = ("model", "model_args", "classes", "target", "config", "epoch")


def default_data() -> Path:
    return Path(os.environ.get("FSDD") or REPO.parent / "shared" / "data" / "fsdd" / "recordings")


MODEL = "emb-head"
# Epochs over every row (the sampling weights keep an epoch's length): ~2,000 steps of 128, where the head has
# converged on its held-out folds (experiments/embedding/README.md).
EPOCHS = 10
# Each FSDD clip is drawn 16 times as often as a synthetic one: leave-one-speaker-out 98.5 % against 98.0 % at 4
# (experiments/embedding/README.md, "Through the package").
REAL_WEIGHT = 16
# Without the vocal-tract warp: over the frozen encoder the warped voices cost a point (experiments/embedding).
SYNTH_ARGS = ["--voices", "600", "--takes", "2", "--seed", "0", "--no-perturb", "warp"]
# The none class (experiments/no-digit, recipe C): the other-language real voices weighted down so that "a real
# voice" does not come to mean "none". 1,800 noise clips, not 300: over the frozen encoder, with 300, noise that passed
# the signal gate got a digit (experiments/embedding/README.md, "More noise"). 1,478 common words said 24 times a voice,
# not 157 words 12 times: fewer unseen words pass (experiments/embedding/README.md, "More words").
NONE_EPOCHS = 10
OTHER_LANGUAGE_WEIGHT = 0.25
NEG_ARGS = ["--words", str(REPO / "experiments" / "no-digit" / "words-common.txt"), "--voices", "500", "--first", "0",
            "--per-voice", "24", "--noise", "1800", "--seed", "0", "--prefix", "n-"]  # fmt: skip
# Every clip a little faster or slower (tempo and pitch) and through a random first-order tilt (another microphone):
# a held-out real speaker's digits lean less towards none, so fewer unseen words pass at the same 97 % of digits
# (experiments/embedding/README.md, "Voice and channel perturbation").
NONE_AUGMENT = ["--augment.speed", "0.9", "1.1", "--augment.tilt", "0.3"]
# Calibration of the shipped model, which has no validation speakers of its own: the mean of the temperatures fitted
# on the validation clips of the recipe's six held-out folds (one per FSDD speaker), each clip counted as training
# draws it (train.calibrate), and at that temperature the lowest p(none) threshold that kept >= 97 % of the held-out
# FSDD speaker's digits on every fold (experiments/embedding/README.md, "Which clips fit the temperature").
TEMPERATURE = 0.528
NONE_THRESHOLD = 0.88


def default_synth() -> Path:
    return data_home() / "datasets" / "synth-voices-600-nowarp"


def default_negatives() -> Path:
    return data_home() / "datasets" / "negatives-500x24-common-noise1800"


def recipe(data: str, synth: str | None, negatives: list[str], epochs: int | None) -> list[str]:
    """`audiomnist train` arguments of the recipe: the model's defaults but for the data, weights and epochs, every
    speaker in training. `negatives`: the other-language folders, then the synthetic non-digit words (empty: digits
    only)."""
    epochs = (NONE_EPOCHS if negatives else EPOCHS) if epochs is None else epochs
    sources, weights = ["--data", data], [REAL_WEIGHT]
    if synth:
        sources, weights = sources + ["--data", synth], weights + [1]
    for i, neg in enumerate(negatives):
        sources += ["--negative", neg]
        weights.append(1 if i == len(negatives) - 1 else OTHER_LANGUAGE_WEIGHT)
    if len(weights) > 1:
        sources += [arg for w in weights for arg in ("--data-weight", f"{w:g}")]
    return ["train", "--model", MODEL, *sources, *(NONE_AUGMENT if negatives else []), "--val-frac", "0",
            "--test-frac", "0", "--seed", "0", "--epochs", str(epochs)]  # fmt: skip


def other_languages(fsdd: Path) -> list[str]:
    """The Bengali and Ukrainian digit-word folders of the shared data that holds `fsdd` (its recordings folder)."""
    shared = fsdd.resolve().parents[1]
    found = [shared / name for name in ("bengali", "ukrainian")]
    missing = [str(f) for f in found if not f.is_dir()]
    if missing:
        sys.exit(f"error: {', '.join(missing)}: missing (the none class learns from them); or pass --negatives none")
    return [str(f) for f in found]


def portable(path: str) -> str:
    """A data path as recorded in the shipped model: relative to the repository or to $AUDIOMNIST_HOME where possible,
    not this machine's."""
    if not Path(path).is_absolute():
        return path
    if Path(path).is_relative_to(data_home()):
        return "$AUDIOMNIST_HOME/" + Path(path).relative_to(data_home()).as_posix()
    return os.path.relpath(path, REPO)


def ship(run_dir: Path, out: Path, command: list[str], seconds: float, given: tuple[str, ...] = ()) -> dict:
    """Copy run_dir/last.pt to `out` without optimizer state; write the metadata `out`.json; return it."""
    state = load_checkpoint(run_dir / "last.pt")
    shipped = {k: state[k] for k in SHIPPED_KEYS}
    # Folders made here are recorded by the name they were given (they may be links), the others by portable().
    named = {str(Path(g).resolve()): portable(g) for g in given}
    cfg = shipped["config"]
    shipped["config"] = {**cfg, **{k: [named.get(str(Path(d).resolve()), portable(d)) for d in cfg.get(k, [])]
                                   for k in ("data", "negatives")}}  # fmt: skip
    shipped["model_state"] = "last"
    if "none" in shipped["classes"]:
        shipped.update(temperature=TEMPERATURE, none_threshold=NONE_THRESHOLD)
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
            "none_class": shipped["config"]["negatives"],
            "clips": split["train_clips"],
            "speakers": len(split["train_speakers"]),
            "held_out": "none: every speaker is in training; see MODEL_CARD.md for leave-one-speaker-out accuracy",
        },
        "recipe": {"command": "audiomnist " + " ".join(command), "epochs": cfg.epochs, "kept": "last epoch"},
        "calibration": {
            "temperature": shipped.get("temperature", 1.0),
            "none_threshold": shipped.get("none_threshold"),
            "from": "the recipe's six held-out folds, one per FSDD speaker: experiments/embedding/README.md",
        },  # fmt: skip
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
    net, cfg, classes, calibration = load_calibrated(checkpoint)
    out = export_onnx(net, cfg, classes, checkpoint.with_suffix(".onnx"), *calibration)
    return out, parity(net, cfg, out, sample_windows(cfg), calibration.temperature)


def make_negatives(out: Path) -> int:
    """tools/make_negatives.py's recipe into `out`, in this process (its synthesisers die with it), made beside it
    and renamed into place at the end, so an interrupted run leaves no half folder that a later one would take."""
    spec = importlib.util.spec_from_file_location("make_negatives", REPO / "tools" / "make_negatives.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    status = tool.main([str(partial), *NEG_ARGS])
    if status == 0:
        partial.rename(out)
    return status


def epoch_seconds(run_dir: Path) -> float:
    """A finished run's training time: the sum of its epochs' (what --run reports in place of a timed run)."""
    return sum(h.get("seconds", 0) for h in json.loads((run_dir / "metrics.json").read_text())["history"])


def train(args: argparse.Namespace, data: str, synth: str | None, negatives: list[str]) -> tuple[Path | None, float]:
    """Make the synthetic folders where missing, run the recipe; (its run folder or None on failure, seconds)."""
    if synth and not Path(synth).is_dir() and cli.main(["data", "synth", synth, *SYNTH_ARGS]) != 0:
        return None, 0.0
    if negatives and not Path(negatives[-1]).is_dir() and make_negatives(Path(negatives[-1])) != 0:
        return None, 0.0
    runs = args.runs or runs_home()
    before = set(runs.glob("*-default"))
    extra = ["--name", "default", "--runs", str(runs)] + ([] if sys.stderr.isatty() else ["--no-progress"])
    t0 = time.time()
    if cli.main(recipe(data, synth, negatives, args.epochs) + extra) != 0:
        return None, 0.0
    (run_dir,) = set(runs.glob("*-default")) - before
    return run_dir, time.time() - t0


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
        "(default: $AUDIOMNIST_HOME/datasets/synth-voices-600-nowarp)",
    )
    p.add_argument(
        "--negatives",
        default=str(default_negatives()),
        help="synthetic non-digit words, made first when missing; 'none' trains digits only, with no none class "
        "(default: $AUDIOMNIST_HOME/datasets/negatives-500x24-common-noise1800)",
    )
    p.add_argument("--epochs", type=int, help=f"override the recipe's {NONE_EPOCHS} epochs (quick checks only)")
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
    p.add_argument("--run", type=Path, help="package this finished run of the recipe (its last.pt) instead of training")
    args = p.parse_args(argv)
    if args.onnx_only:
        out, diff = ship_onnx(args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
        return 0 if diff <= 1e-4 else 1
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: no FSDD recordings there; pass --data PATH or set FSDD")
    synth = None if args.synth == "none" else str(Path(args.synth).absolute())
    negatives = [] if args.negatives == "none" else other_languages(args.data) + [str(Path(args.negatives).absolute())]
    data = args.data.resolve()
    if args.run:
        run_dir, seconds = args.run, epoch_seconds(args.run)
    else:
        run_dir, seconds = train(args, str(data), synth, negatives)
        if run_dir is None:
            return 1
    command = recipe(portable(str(data)), synth and portable(synth), [portable(n) for n in negatives], args.epochs)
    meta = ship(run_dir, args.out, command, seconds, tuple(g for g in (synth, *negatives) if g))
    print(
        f"wrote {args.out} ({meta['bytes'] / 1e3:.0f} kB, sha256 {meta['sha256'][:12]}...) and "
        f"{args.out.with_suffix('.json')}"
    )
    onnx, diff = ship_onnx(args.out)
    print(f"wrote {onnx} ({onnx.stat().st_size / 1e3:.0f} kB); max probability diff from torch {diff:.1e}")
    print(f"final epoch: train accuracy {meta['final_epoch']['train_acc']:.4f}; run folder {run_dir}")
    print(
        "accuracy on unseen speakers: the recipe's held-out folds, experiments/embedding/README.md (with the none "
        "class) or `audiomnist cv ... --fold-folders 1 --folds loso` (experiments/voices); then update MODEL_CARD.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
