"""Test-time speed perturbation: measure.py's groups with every clip also played faster and slower (tempo and pitch,
as --augment.speed trains), the probabilities of the speeds averaged, scored at one temperature.

    python experiments/no-digit/speeds.py RUN --data ../shared/data --negatives NEGDIR --out FILE.json
        [--speeds 1 0.9 1.1] [--temperature T]

Prints and saves, for the first speed alone and for the speeds averaged (mean log-probability, mean probability),
the shares answered with a digit at the p(none) threshold that keeps 97 % of the held-out FSDD speaker's digits,
and the ECE on that speaker.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import measure
import numpy as np
import soxr

from audiomnist.infer import Classifier


def played_at(clf: Classifier, waves: list[np.ndarray], speed: float) -> dict[str, np.ndarray]:
    """The T = 1 probabilities (one-hot none for the gate's refusals) of `waves` played `speed` times as fast."""
    sr = clf.sample_rate
    clips = [soxr.resample(w, sr * speed, sr).astype(np.float32) if speed != 1 and len(w) > 1 else w for w in waves]
    preds = [q for i in range(0, len(clips), 64) for q in clf.predict_batch(clips[i : i + 64], sr)]
    probs, gated = measure.uncalibrated(clf, preds)
    return {"probs": probs, "gated": gated}


def combine(per_speed: list[np.ndarray], how: str) -> np.ndarray:
    """The speeds' probabilities averaged: "mean", or "log" (the normalised geometric mean)."""
    stack = np.stack(per_speed)
    if how == "mean":
        return stack.mean(0)
    logp = np.log(np.clip(stack, 1e-12, 1)).mean(0)
    p = np.exp(logp - logp.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd, bengali, ukrainian)")
    p.add_argument("--negatives", type=Path, required=True, help="NEGDIR (measure.py)")
    p.add_argument("--speeds", type=float, nargs="+", default=[1.0, 0.9, 1.1], help="the first is scored alone too")
    p.add_argument("--temperature", type=float, help="score at this temperature (default: the run's stored one)")
    p.add_argument("--out", type=Path, required=True, help="FILE.json")
    args = p.parse_args(argv)
    clf = Classifier.load(args.run)
    held = measure.groups(args.run, args.data, args.negatives)
    waves = {name: [clf.load_file(f) for f in files] for name, files in held.items()}
    runs = [{name: played_at(clf, w, s) for name, w in waves.items()} for s in args.speeds]
    temperature = clf.temperature if args.temperature is None else args.temperature
    result = {"run": str(args.run), "speeds": args.speeds, "temperature": temperature}
    for label, used, how in (
        ("first speed alone", runs[:1], "mean"),
        ("mean", runs, "mean"),
        ("mean log", runs, "log"),
    ):
        raw = {}
        for i, name in enumerate(held):
            raw[f"{i}/probs"] = combine([r[name]["probs"] for r in used], how)
            raw[f"{i}/gated"], raw[f"{i}/unreadable"] = used[0][name]["gated"], np.array(0)
            if "digits" in name:
                raw[f"{i}/truth"] = np.array([int(f.stem.split("_")[0]) for f in held[name]])
        scored = measure.score(raw, list(held), clf.classes, temperature)
        fsdd = scored["groups"][measure.FSDD]
        result[label] = {"at_digit_floor": scored["at_digit_floor"], "ece_fsdd": fsdd["ece_calibrated"]}
        floor = scored["at_digit_floor"]
        shares = ", ".join(f"{k.split(',')[0]} {v:.3f}" for k, v in floor.items() if k not in ("floor", "threshold"))
        print(f"{label:18s} floor {floor['threshold']:.3f}  ECE {fsdd['ece_calibrated']:.3f}  {shares}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
