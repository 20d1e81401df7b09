"""Rebuild a shipped digit-string model: "strings" (ctc-tcn, the live stream's) or "strings-emb" (emb-ctc on the
speech_embedding encoder, for whole recordings), trained on every FSDD speaker plus synthetic voices.

    python tools/make_strings_model.py [--recipe tcn|emb] [--data FSDD] [--synth DIR] [--synth-strings DIR]
                                       [--synth-fast DIR] [--synth-repeats DIR]
    python tools/make_strings_model.py --recipe emb --run RUN_DIR     # package a finished run, no training

The emb recipe is one stage: `train-strings --model emb-ctc --features.kind speech_embedding` on the same three
folders (its isolated synthetic digits without the vocal-tract warp, `data synth --no-perturb warp`) plus a fourth,
1,000 more voices saying strings whole up to 1.7 x faster than their own pace (`data synth --string-rate 1,1.7
--seed 1`), and a fifth, 1,000 more reading a run of equal digits out ("double five": `data synth --string-repeats 1
--seed 2`), weighted 4 1 0.5 0.35 0.15, EMB_ARGS below; experiments/strings/README.md ("On the speech_embedding
encoder", "Fast whole strings", "Numbers read out") has its folds.

The tcn recipe trains `audiomnist train-strings --data FSDD --data SYNTH --data SYNTH_STRINGS --data-weight 2 1 1`
(strings assembled from isolated clips of the real and synthetic voices, plus strings the synthesisers said whole) in
two stages: 10 epochs, then 10 more from those weights with a new, lower schedule (`--init RUN --lr 1e-3` plus
TUNE_ARGS), keeps the second run's best.pt (chosen on held-out synthetic voices), writes
src/audiomnist/pretrained/strings.pt without optimizer state,
strings.json (metadata) and strings.onnx (+ sidecar, checked against torch). The synthetic folders are made first
when missing (`audiomnist data synth DIR --voices 600 --takes 2 --seed 0` and `... --takes 0 --strings 6 --sample-rate
8000`). Accuracy on unseen speakers: the same command with `--test-speaker NAME` (experiments/strings/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from make_model import portable  # tools/ is this script's folder

from audiomnist import __version__, cli
from audiomnist.checkpoint import load_checkpoint, save_checkpoint
from audiomnist.export import export_string_onnx, string_parity
from audiomnist.models import count_parameters
from audiomnist.paths import atomic_write_text, data_home, runs_home
from audiomnist.string_model import load
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, load_clips

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "audiomnist" / "pretrained" / "strings.pt"
FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
EPOCHS, STEPS = 10, 250
# The second stage: the same data and length from the first stage's weights (experiments/strings/README.md).
TUNE_ARGS = ["--lr", "1e-3", "--vtlp", "0.9", "1.1"]
WEIGHTS = ("2", "1", "1")  # FSDD's real voices drawn as often as the two synthetic folders together
SYNTH_DIGITS = ["--voices", "600", "--takes", "2", "--seed", "0"]
SYNTH_STRINGS = ["--voices", "600", "--takes", "0", "--strings", "6", "--seed", "0", "--sample-rate", "8000"]


EMB_ARGS = ["--model", "emb-ctc", "--features.kind", "speech_embedding", "--pool", "20000", "--lr", "2e-3"]
EMB_EPOCHS = 20  # one stage over the encoded pool
# Over the encoder, strings of FSDD's real voices two in three, not one in two: held-out FSDD speakers' strings came out
# better (experiments/strings/README.md, "More real voices in the pool").
# The whole strings split between the voices' own pace and up to 1.7 x faster ("Fast whole strings").
# Numbers with a run read out ("double five") take a small share from the fast ones: at the share of the others,
# held-out speakers lost digits ("Numbers read out").
EMB_WEIGHTS = ("4", "1", "0.5", "0.35", "0.15")
SYNTH_DIGITS_NOWARP = [*SYNTH_DIGITS, "--no-perturb", "warp"]
SYNTH_FAST = ["--voices", "1000", "--takes", "0", "--strings", "6", "--seed", "1", "--string-rate", "1,1.7",
              "--sample-rate", "8000"]  # fmt: skip
SYNTH_REPEATS = ["--voices", "1000", "--takes", "0", "--strings", "4", "--seed", "2", "--string-repeats", "1",
                 "--string-rate", "1,1.5", "--sample-rate", "8000"]  # fmt: skip


def recipe(
    data: str, synth: str, strings: str, fast: str, repeats: str, epochs: int, init: str | None = None,
    emb: bool = False,
) -> list[str]:  # fmt: skip
    """train-strings arguments of the first stage, or with `init` (the first stage's run) of the second; `emb`: the
    one stage of the emb recipe, the only one with the `fast` and `repeats` strings."""
    folders = (data, synth, strings, fast, repeats) if emb else (data, synth, strings)
    sources = [a for f in folders for a in ("--data", f)]
    weights = [a for w in (EMB_WEIGHTS if emb else WEIGHTS) for a in ("--data-weight", w)]
    tune = ["--init", init, *TUNE_ARGS] if init else []
    extra = EMB_ARGS if emb else tune
    return ["train-strings", *sources, *weights, "--epochs", str(epochs), "--steps", str(STEPS), "--seed", "0", *extra]


def train(args: argparse.Namespace) -> Path | None:
    """Both stages (the emb recipe: its one) in runs_home(); the last stage's run folder (None if one failed)."""
    runs, run_dir = runs_home(), None
    emb = args.recipe == "emb"
    for name in ("strings-emb",) if emb else ("strings", "strings-tuned"):
        before = set(runs.glob(f"*-{name}"))
        data = (str(args.data), str(args.synth), str(args.synth_strings), str(args.synth_fast), str(args.synth_repeats))
        argv = recipe(*data, args.epochs, run_dir and str(run_dir), emb=emb)
        if cli.main(argv + ["--runs", str(runs), "--name", name, "--no-progress"]) != 0:
            return None
        (run_dir,) = set(runs.glob(f"*-{name}")) - before
    return run_dir


def ship(run_dir: Path, out: Path, command: list[str]) -> dict:
    """best.pt without optimizer state to `out`, its metadata to out.json, its ONNX export beside it."""
    state = load_checkpoint(run_dir / "best.pt")
    fsdd = state["config"]["data"][0]
    # The shipped files name the data as this repository's layout does, not this machine's paths.
    config = {**state["config"], "data": [portable(d) for d in state["config"]["data"]]}
    if config.get("init"):
        config["init"] = "FIRST_RUN (the recipe's first stage)"
    save_checkpoint({**{k: state[k] for k in ("task", "model", "classes", "epoch")}, "config": config}, out)
    net, cfg = load(out)
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    kept = next(h for h in history if h["epoch"] == state["epoch"])  # best.pt's epoch, not the last one
    onnx = export_string_onnx(net, cfg, out.with_suffix(".onnx"))
    fsdd = load_clips([fsdd], cfg.audio.sample_rate, progress=False)
    maker = StringMaker(fsdd, cfg.audio.sample_rate, TEST_ASSEMBLY)
    rng = np.random.default_rng(0)
    diff = string_parity(net, cfg, onnx, [maker.make(rng, length=n)[0] for n in (1, 5, 12)])
    meta = {
        "name": out.stem, "task": "strings", "file": out.name, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "bytes": out.stat().st_size, "model": cfg.model, "parameters": count_parameters(net),
        "classes": state["classes"], "epoch": state["epoch"],
        "data": "FSDD (all 6 speakers, strings assembled from their clips) + 600 synthetic voices (isolated digits "
        "assembled into strings, and strings said whole)"
        + (" + 1,000 synthetic voices saying strings whole up to 1.7 x faster" if len(config["data"]) > 3 else "")
        + (" + 1,000 reading a run of equal digits out (\"double five\")" if len(config["data"]) > 4 else ""),
        "recipe": {"command": "audiomnist " + " ".join(command), "kept": "best.pt by held-out synthetic voices"},
        "validation": {k: v for k, v in kept.items() if k.startswith("val")},
        "onnx": {"file": onnx.name, "max_probability_diff_from_torch": diff},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "audiomnist": __version__,
    }  # fmt: skip
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("tcn", "emb"), default="tcn", help="which shipped model (default tcn)")
    p.add_argument("--data", type=Path, default=FSDD, help="FSDD recordings (default ../shared/data/fsdd/recordings)")
    home = data_home() / "datasets"
    p.add_argument("--synth", type=Path, help="synthetic isolated digits (default: DATASETS/synth-voices-600[-nowarp])")
    p.add_argument("--synth-strings", type=Path, default=home / "synth-strings-600", help="synthetic whole strings")
    p.add_argument("--synth-fast", type=Path, default=home / "synth-strings-fast-1000",
                   help="synthetic whole strings said faster (the emb recipe's)")  # fmt: skip
    p.add_argument("--synth-repeats", type=Path, default=home / "synth-strings-repeats-1000",
                   help="synthetic whole strings with a run read out, \"double five\" (the emb recipe's)")  # fmt: skip
    p.add_argument(
        "--epochs", type=int, help=f"epochs of {STEPS} batches (default {EPOCHS} a stage; emb: {EMB_EPOCHS})"
    )
    p.add_argument("--run", type=Path, help="package this finished (second-stage) run instead of training")
    p.add_argument("--out", type=Path, help="shipped checkpoint (default: the package's strings.pt / strings-emb.pt)")
    args = p.parse_args(argv)
    emb = args.recipe == "emb"
    args.synth = args.synth or home / ("synth-voices-600-nowarp" if emb else "synth-voices-600")
    args.out = args.out or OUT.with_name("strings-emb.pt" if emb else "strings.pt")
    args.epochs = args.epochs or (EMB_EPOCHS if emb else EPOCHS)
    named = ("FSDD", "SYNTH", "SYNTH_STRINGS", "SYNTH_FAST", "SYNTH_REPEATS")
    if emb:
        command = recipe(*named, args.epochs, emb=True)
    else:
        first, second = (recipe(*named, args.epochs, init) for init in (None, "FIRST_RUN"))
        command = [*first, ";", "audiomnist", *second]
    run_dir = args.run
    if run_dir is None:
        digits = SYNTH_DIGITS_NOWARP if emb else SYNTH_DIGITS
        made = [(args.synth, digits), (args.synth_strings, SYNTH_STRINGS)]
        made += [(args.synth_fast, SYNTH_FAST), (args.synth_repeats, SYNTH_REPEATS)] * emb
        for folder, flags in made:
            if not folder.is_dir() and cli.main(["data", "synth", str(folder), *flags]) != 0:
                return 1
        run_dir = train(args)
        if run_dir is None:
            return 1
    meta = ship(run_dir, args.out, command)
    diff = meta["onnx"]["max_probability_diff_from_torch"]
    print(f"wrote {args.out} ({meta['bytes'] / 1e3:.0f} kB), {args.out.with_suffix('.json').name} and "
          f"{meta['onnx']['file']} (max probability diff from torch {diff:.1e})")  # fmt: skip
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
