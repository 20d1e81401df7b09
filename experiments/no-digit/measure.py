"""Measure a run trained with --negative through the Classifier (what predict/serve/listen answer), on held-out
speakers and voices only: FSDD digits (the run's test speaker), synthetic digits of held-out voices, other-language
digit words (the run's test speakers), synthetic English non-digit words said by held-out voices (words of the
training list, and words never trained on), noise, and degenerate audio (silence, hiss, too short).

    python experiments/no-digit/measure.py RUN_DIR --data ../shared/data --negatives NEGDIR [--out FILE.json]
        [--temperature T] [--probs FILE.npz]

NEGDIR holds synth-digits-heldout/, neg-train/, neg-heldout-seen/, neg-heldout-words/, neg-heldout-noise/ (README.md).
Two ways to say "digit" are scored from the same calibrated probabilities: the Classifier's (the top class is a digit
and at least --min-prob), and a threshold on the none probability alone (a digit unless p(none) >= T).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiomnist.evaluate import MIN_PROB_CURVE, expected_calibration_error, with_temperature
from audiomnist.infer import Classifier

SR = 8000
NONE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
DIGIT_FLOOR = 0.97  # the share of held-out digits that must still be answered
FSDD = "fsdd digits, held-out speaker"
AUDIO = (".wav", ".flac")


def degenerate() -> list[np.ndarray]:
    """Audio the gate must refuse before the network: silence, hiss under -60 dBFS, clicks and cuts under 100 ms."""
    rng = np.random.default_rng(0)
    clips = [np.zeros(SR, np.float32), np.zeros(SR // 10, np.float32)]
    clips += [10 ** (-75 / 20) * rng.standard_normal(SR).astype(np.float32) for _ in range(10)]
    clips += [0.3 * rng.standard_normal(int(SR * s)).astype(np.float32) for s in (0.01, 0.02, 0.05, 0.08, 0.09)]
    click = np.zeros(SR, np.float32)
    click[4000:4080] = 0.5
    return clips + [click, np.full(SR, np.nan, np.float32), np.full(SR, 1e30, np.float32)]


def speaker(p: Path) -> str:
    return p.stem.split("_")[1]


def groups(run: Path, data: Path, negatives: Path) -> dict[str, list[Path]]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = {s.split("/")[-1] for s in split["test_speakers"]}  # "folder/name" when names collided across folders

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix in AUDIO)

    def held(folder: Path) -> list[Path]:
        return [p for p in files(folder) if speaker(p) in test]

    return {
        FSDD: held(data / "fsdd" / "recordings"),
        "synthetic digits, held-out voices": files(negatives / "synth-digits-heldout"),
        "bengali + ukrainian, held-out speakers": held(data / "bengali") + held(data / "ukrainian"),
        "train-list words, held-out voices": files(negatives / "neg-heldout-seen"),
        "held-out words, held-out voices": files(negatives / "neg-heldout-words"),
        "noise, held out": files(negatives / "neg-heldout-noise")
        + [p for p in held(negatives / "neg-train") if "noise" in p.stem],
    }


def curves(probs: np.ndarray, classes: list[str], truth: np.ndarray | None) -> dict:
    """Share answered with a digit (and accuracy among those) per --min-prob and per none threshold."""
    none = classes.index("none")
    top = probs.argmax(1)
    digit_top = np.delete(probs, none, axis=1).argmax(1)  # the best digit, whatever p(none)
    digit_top = digit_top + (digit_top >= none)

    def row(accepted: np.ndarray, answer: np.ndarray, **key) -> dict:
        out = {**key, "accepted": float(accepted.mean()) if len(accepted) else float("nan")}
        if truth is not None and accepted.any():
            out["accuracy_on_accepted"] = float((answer == truth)[accepted].mean())
        return out

    return {
        "min_prob": [row((top != none) & (probs.max(1) >= t), top, min_prob=t) for t in MIN_PROB_CURVE],
        "none_threshold": [row(probs[:, none] < t, digit_top, none_threshold=t) for t in NONE_THRESHOLDS],
    }


def at_digit_floor(groups: dict, floor: float = DIGIT_FLOOR) -> dict:
    """Ranking quality, threshold-free: each group's share answered with a digit at the p(none) threshold that keeps
    `floor` of this run's held-out FSDD digits (chosen on the test speaker, so a comparison of recipes, not a
    deployable threshold)."""
    fsdd = np.array(groups[FSDD]["p_none"])
    t = float(np.nextafter(np.quantile(fsdd, floor, method="higher"), np.inf))
    return {"floor": floor, "threshold": t} | {k: float(np.mean(np.array(g["p_none"]) < t)) for k, g in groups.items()}


def uncalibrated(clf: Classifier, preds: list) -> tuple[np.ndarray, np.ndarray]:
    """The T = 1 probabilities of Classifier answers (one-hot none for the gate's refusals), and which those are."""
    none_only = [float(c == "none") for c in clf.classes]
    probs = np.array([[q.probabilities[c] for c in clf.classes] if q.probabilities else none_only for q in preds])
    gated = np.array([not q.probabilities for q in preds])  # refused by the gate: no digit, whatever the T
    return np.where(gated[:, None], probs, with_temperature(probs, 1 / clf.temperature)), gated


def at_temperature(raw: dict[str, np.ndarray], i: int, temperature: float) -> np.ndarray:
    """Group i of raw_probabilities at `temperature`; the gate's refusals stay one-hot none."""
    gated = raw[f"{i}/gated"].astype(bool)
    return np.where(gated[:, None], raw[f"{i}/probs"], with_temperature(raw[f"{i}/probs"], temperature))


def raw_probabilities(clf: Classifier, groups: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    """Per group: the T = 1 probabilities of every clip (one-hot none for the audio gate's refusals) and, for
    digits, the truth; the expensive part, saved beside --out so other temperatures cost nothing (--probs)."""
    out = {}
    for i, (name, paths) in enumerate(groups.items()):
        preds, errors = clf.predict_files(paths)
        out[f"{i}/probs"], out[f"{i}/gated"] = uncalibrated(clf, preds)
        out[f"{i}/unreadable"] = np.array(len(errors))
        if "digits" in name:
            out[f"{i}/truth"] = np.array([int(Path(q.path).stem.split("_")[0]) for q in preds])
    return out


def score(raw: dict[str, np.ndarray], names: list[str], classes: list[str], temperature: float) -> dict:
    """measure's groups at this temperature, from raw_probabilities."""
    result = {"temperature": temperature, "groups": {}}
    for i, name in enumerate(names):
        gated = raw[f"{i}/gated"].astype(bool)
        probs = at_temperature(raw, i, temperature)
        truth = raw.get(f"{i}/truth")
        g = {"clips": len(probs), "unreadable": int(raw[f"{i}/unreadable"]), "gated": int(gated.sum())}
        g.update(curves(probs, classes, truth))
        if truth is not None:  # ECE of the 11-way answer, before (T = 1) and after temperature scaling
            g["ece"] = expected_calibration_error(raw[f"{i}/probs"], truth)
            g["ece_calibrated"] = expected_calibration_error(probs, truth)
        g["p_none"] = [round(float(v), 5) for v in probs[:, classes.index("none")]]
        result["groups"][name] = g
    result["at_digit_floor"] = at_digit_floor(result["groups"])
    return result


def show(result: dict) -> None:
    floor = result["at_digit_floor"]
    print(
        f"at the threshold keeping {floor['floor']:.0%} of FSDD digits ({floor['threshold']:.4f}): "
        + ", ".join(f"{k.split(',')[0]} {v:.3f}" for k, v in floor.items() if k not in ("floor", "threshold", FSDD))
    )
    print(f"{result['run']}  T {result['temperature']:.3f}")
    for name, g in result["groups"].items():
        if "min_prob" not in g:
            print(f"{name:40s} n={g['clips']:5d}  accepted {g['accepted']:.3f}")
            continue
        mp = {r["min_prob"]: r for r in g["min_prob"]}
        nt = {r["none_threshold"]: r for r in g["none_threshold"]}
        acc = f"  acc {mp[0.0].get('accuracy_on_accepted', float('nan')):.3f}" if "digits" in name else ""
        ece = f"  ECE {g['ece']:.3f} -> {g['ece_calibrated']:.3f}" if "ece" in g else ""
        print(
            f"{name:40s} n={g['clips']:5d}  accepted: min-prob 0 {mp[0.0]['accepted']:.3f}"
            f", 0.5 {mp[0.5]['accepted']:.3f}, 0.7 {mp[0.7]['accepted']:.3f}"
            f"; p(none) < 0.7 {nt[0.7]['accepted']:.3f}, < 0.9 {nt[0.9]['accepted']:.3f}"
            f", < 0.98 {nt[0.98]['accepted']:.3f}{acc}{ece}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd, bengali, ukrainian)")
    p.add_argument("--negatives", type=Path, required=True, help="NEGDIR (see above)")
    p.add_argument("--backend", default=None, help="torch (default for a run) or onnx")
    p.add_argument("--temperature", type=float, help="score at this temperature (default: the run's stored one)")
    p.add_argument("--probs", type=Path, help="the .npz an earlier --out saved: skip the predictions")
    p.add_argument("--out", type=Path, help="FILE.json; the T = 1 probabilities go to FILE.npz beside it")
    args = p.parse_args(argv)
    clf = Classifier.load(args.run, backend=args.backend)
    held = groups(args.run, args.data, args.negatives)
    if args.probs:
        raw = dict(np.load(args.probs))
    else:
        raw = raw_probabilities(clf, held)
        if args.out:
            np.savez(args.out.with_suffix(".npz"), **raw)
    temperature = clf.temperature if args.temperature is None else args.temperature
    result = {"run": str(args.run), **score(raw, list(held), clf.classes, temperature)}
    gated = clf.predict_batch(degenerate(), SR)
    result["groups"]["silence, hiss, too short, bad samples"] = {
        "clips": len(gated),
        "accepted": float(np.mean([q.label is not None for q in gated])),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
