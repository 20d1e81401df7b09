"""Which rows should fit the softmax temperature? Fit it on a run's validation speakers several ways and score each
on its held-out speakers and voices (expected calibration error of the 11-way answer, 15 bins):

    all rows     every validation clip counts once (what `train` stores today)
    as sampled   each clip weighted by its folder's --data-weight, as training draws them
    per folder   each folder's clips share one equal weight
    digits only  the validation digits alone (the none clips do not pull T)

    other folds' held-out FSDD   the FSDD speakers held out by the other runs given (never this run's own)

    python experiments/no-digit/calibration.py RUN_DIR [RUN_DIR ...] --negatives NEGDIR [--out FILE.json]

Held-out groups: the run's test split (all of it, and its digits), the held-out FSDD speaker(s), and the synthetic
digits of held-out voices in NEGDIR/synth-digits-heldout (through the Classifier, as measure.py scores them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from measure import AUDIO, raw_probabilities

from audiomnist.checkpoint import load_calibrated
from audiomnist.dataset import NONE, load_data, make_split, row_weights
from audiomnist.evaluate import expected_calibration_error, fit_temperature, predict_rows, with_temperature
from audiomnist.features import build_frontend
from audiomnist.infer import Classifier

FSDD_FOLDER = 0  # the recipe's first --data folder


def heldout_synthetic(run: Path, negatives: Path) -> tuple[np.ndarray, np.ndarray]:
    """T = 1 probabilities and digits of the held-out synthetic voices, through the Classifier as measure.py scores
    them (the audio gate's refusals left out: they have no probabilities)."""
    paths = sorted(p for p in (negatives / "synth-digits-heldout").iterdir() if p.suffix in AUDIO)
    raw = raw_probabilities(Classifier.load(run), {"synthetic digits, held-out voices": paths})
    heard = ~raw["0/gated"]
    return raw["0/probs"][heard], raw["0/truth"][heard]


def run_probs(run: Path, negatives: Path) -> dict[str, np.ndarray]:
    """T = 1 probabilities, labels and folders of a run's validation and test rows and its held-out synthetic voices
    (kept in RUN/calibration-probs.npz: the predictions take minutes)."""
    cached = run / "calibration-probs.npz"
    if cached.is_file():
        return dict(np.load(cached))
    net, cfg, classes, _ = load_calibrated(run / "best.pt", "cpu")
    data = load_data(cfg, progress=False)
    split = make_split(cfg, data)
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate)
    out = {"none": np.array(classes.index(NONE)), "val_w": row_weights(data, split.val, cfg.data_weights)}
    for part, rows in (("val", split.val), ("test", split.test)):
        out[f"{part}_p"] = predict_rows(net, frontend, data.cache, rows, "cpu")
        out[f"{part}_y"], out[f"{part}_src"] = data.labels[rows], data.source[rows]
    out["synth_p"], out["synth_y"] = heldout_synthetic(run, negatives)
    np.savez(cached, **out)
    return out


def fit_rules(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per validation row weights of each way of fitting T."""
    src, y = r["val_src"], r["val_y"]
    sizes = np.bincount(src)
    return {
        "all rows": np.ones(len(y)),
        "as sampled": r["val_w"],  # train.calibrate's weights
        "per folder": 1.0 / sizes[src],
        "digits only": (y != r["none"]).astype(float),
    }


def groups(r: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    fsdd, digit = r["test_src"] == FSDD_FOLDER, r["test_y"] != r["none"]
    val_fsdd = r["val_src"] == FSDD_FOLDER
    return {
        "test split": (r["test_p"], r["test_y"]),
        "test split digits": (r["test_p"][digit], r["test_y"][digit]),
        "held-out FSDD speaker": (r["test_p"][fsdd], r["test_y"][fsdd]),
        "held-out synthetic voices": (r["synth_p"], r["synth_y"]),
        "validation FSDD speaker": (r["val_p"][val_fsdd], r["val_y"][val_fsdd]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders of the same recipe, one per held-out speaker")
    p.add_argument("--negatives", type=Path, required=True, help="NEGDIR (experiments/no-digit/README.md)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    probs = {run: run_probs(run, args.negatives) for run in args.runs}
    result = {}
    for run, r in probs.items():
        temps = {"uncalibrated": 1.0}
        temps.update({k: fit_temperature(r["val_p"], r["val_y"], w) for k, w in fit_rules(r).items()})
        others = [groups(o)["held-out FSDD speaker"] for o in probs.values() if o is not r]
        if others:  # the other folds' unheard FSDD speakers: never this fold's own test speaker
            pp, yy = np.concatenate([o[0] for o in others]), np.concatenate([o[1] for o in others])
            temps["other folds' held-out FSDD"] = fit_temperature(pp, yy, np.ones(len(yy)))
        result[str(run)] = {}
        print(run)
        for name, t in temps.items():
            eces = {g: expected_calibration_error(with_temperature(pp, t), yy) for g, (pp, yy) in groups(r).items()}
            result[str(run)][name] = {"temperature": t, "ece": eces}
            print(f"  {name:26s} T {t:.3f}  " + "  ".join(f"{g} {e:.4f}" for g, e in eces.items()))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
