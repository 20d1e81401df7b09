"""Measure a run trained with --negative through the Classifier (what predict/serve/listen answer), on its held-out
speakers only: FSDD digits, other-language digit words, synthetic non-digit words (held-out voices; and held-out
words in held-out voices), noise, and degenerate audio (silence, hiss, too short).

    python experiments/no-digit/measure.py RUN_DIR --data ../shared/data --negatives NEGDIR [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiomnist.evaluate import MIN_PROB_CURVE, expected_calibration_error
from audiomnist.infer import Classifier

SR = 8000


def degenerate() -> list[np.ndarray]:
    """Audio the gate must refuse before the network: silence, hiss under -60 dBFS, clicks and cuts under 100 ms."""
    rng = np.random.default_rng(0)
    clips = [np.zeros(SR, np.float32), np.zeros(SR // 10, np.float32)]
    clips += [10 ** (-75 / 20) * rng.standard_normal(SR).astype(np.float32) for _ in range(10)]
    clips += [0.3 * rng.standard_normal(int(SR * s)).astype(np.float32) for s in (0.01, 0.02, 0.05, 0.08, 0.09)]
    click = np.zeros(SR, np.float32)
    click[4000:4080] = 0.5
    return clips + [click]


def groups(run: Path, data: Path, negatives: Path) -> dict[str, list[Path]]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = set(split["test_speakers"])

    def held(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac") and p.stem.split("_")[1] in test)

    return {
        "fsdd digits (held-out speaker)": held(data / "fsdd" / "recordings"),
        "bengali + ukrainian (held-out speakers)": held(data / "bengali") + held(data / "ukrainian"),
        "synthetic words, held-out voices": [p for p in held(negatives / "synth-train") if "noise" not in p.stem],
        "noise, held-out": [p for p in held(negatives / "synth-train") if "noise" in p.stem]
        + sorted((negatives / "synth-heldout").glob("*noise*.wav")),
        "held-out words, held-out voices": sorted(
            p for p in (negatives / "synth-heldout").glob("*.wav") if "noise" not in p.stem
        ),
    }


def summarize(preds, truth: list[int] | None) -> dict:
    top = np.array([p.probability for p in preds])
    label = [p.label for p in preds]
    out = {"clips": len(preds), "reasons": {}}
    for p in preds:
        if p.label is None:
            out["reasons"][p.reason] = out["reasons"].get(p.reason, 0) + 1
    curve = []
    for t in MIN_PROB_CURVE:
        ok = np.array([lab is not None and p >= t for lab, p in zip(label, top)])
        row = {"min_prob": t, "accepted": float(ok.mean()) if len(ok) else float("nan")}
        if truth is not None and ok.any():
            row["accuracy_on_accepted"] = float(np.mean([lab == str(y) for lab, y, k in zip(label, truth, ok) if k]))
        curve.append(row)
    out["curve"] = curve
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd, bengali, ukrainian)")
    p.add_argument("--negatives", type=Path, required=True, help="folder holding synth-train and synth-heldout")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    clf = Classifier.load(args.run)
    result = {"run": str(args.run), "temperature": clf.temperature, "groups": {}}
    for name, paths in groups(args.run, args.data, args.negatives).items():
        preds, errors = clf.predict_files(paths)
        truth = [int(Path(q.path).stem.split("_")[0]) for q in preds] if name.startswith("fsdd") else None
        result["groups"][name] = summarize(preds, truth)
        if truth is not None:  # ECE of the 11-way answer on the held-out FSDD speaker, before and after scaling
            y = np.array(truth)
            cal = np.array([[q.probabilities[c] for c in clf.classes] for q in preds])
            t, clf.temperature = clf.temperature, 1.0
            raw = np.array([[q.probabilities[c] for c in clf.classes] for q in clf.predict_files(paths)[0]])
            clf.temperature = t
            result["groups"][name]["ece"] = expected_calibration_error(raw, y)
            result["groups"][name]["ece_calibrated"] = expected_calibration_error(cal, y)
    result["groups"]["silence, hiss, too short"] = summarize(clf.predict_batch(degenerate(), SR), None)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    for name, g in result["groups"].items():
        at = {r["min_prob"]: r for r in g["curve"]}
        acc = f"  acc on accepted {at[0.0]['accuracy_on_accepted']:.3f}" if "accuracy_on_accepted" in at[0.0] else ""
        ece = f"  ECE {g['ece']:.3f} -> {g['ece_calibrated']:.3f}" if "ece" in g else ""
        print(
            f"{name:42s} n={g['clips']:5d}  accepted {at[0.0]['accepted']:.3f} (min-prob 0), "
            f"{at[0.5]['accepted']:.3f} (0.5), {at[0.7]['accepted']:.3f} (0.7){acc}{ece}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
