"""Leave-one-FSDD-speaker-out "none" class over frozen speech_embedding vectors: 10 digits + none, the data of
experiments/no-digit's recipe C, scored like its thresholds.py (share answered with a digit by a p(none) threshold).

    python experiments/embedding/none.py EMB [--real-weight 16] [--epochs 10] [--out results/none.json]

EMB holds extract.py's files: fsdd.npz; warp.npz (the 600-voice `data synth` corpus; voices 0-499 train);
negtrain.npz (NEG/neg-train: words and noise of voices 0-499), bn.npz and uk.npz (Bengali, Ukrainian: one speaker in
five, by name hash, is held out); words.npz, seen.npz, noise.npz (NEG/neg-heldout-words, -seen, -noise: voices
500-599, never trained on).
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np
import torch
from heads import load, probabilities, train

NONE = 10
FLOOR = 0.97  # issue 22: share of the held-out speaker's digits still answered
SCORED = ("words", "seen", "other", "noise")


def voice(speaker: str) -> int:
    return int(speaker[1:6]) if speaker[:1] == "s" and speaker[1:6].isdigit() else -1


def data(emb: Path) -> dict[str, dict[str, np.ndarray]]:
    d = {n: load(str(emb / f"{n}.npz")) for n in ("fsdd", "warp", "negtrain", "bn", "uk", "words", "seen", "noise")}
    train_voice = np.array([0 <= voice(s) < 500 for s in d["warp"]["spk"]])
    d["synth"] = {k: v[train_voice] for k, v in d.pop("warp").items()}
    bn, uk = d.pop("bn"), d.pop("uk")
    other = {k: np.concatenate([bn[k], uk[k]]) for k in ("emb", "spk")}
    held = np.array([zlib.crc32(s.encode()) % 5 == 0 for s in other["spk"]])
    d["other"], d["other_train"] = {"emb": other["emb"][held]}, {"emb": other["emb"][~held]}
    return d


def fold(d: dict, held: str, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """p(none) and the best digit of every scored clip, for a head that never heard `held`."""
    test = d["fsdd"]["spk"] == held
    none = lambda g: np.full(len(d[g]["emb"]), NONE)  # noqa: E731
    parts = [
        (d["fsdd"]["emb"][~test], d["fsdd"]["y"][~test], args.real_weight),
        (d["synth"]["emb"], d["synth"]["y"], 1.0),
        (d["negtrain"]["emb"], none("negtrain"), 1.0),
        (d["other_train"]["emb"], none("other_train"), args.other_weight),
    ]
    net = train(parts, NONE + 1, args.epochs, args.seed)
    digits = probabilities(net, d["fsdd"]["emb"][test])
    if args.digit_head:  # which digit: a head that never learnt "none"; whether one: p(none) of the other
        digits[:, :NONE] = probabilities(train(parts[:2], NONE, args.epochs, args.seed), d["fsdd"]["emb"][test])
    out = {"p_none": digits[:, NONE], "right": digits[:, :NONE].argmax(1) == d["fsdd"]["y"][test]}
    return out | {g: probabilities(net, d[g]["emb"])[:, NONE] for g in SCORED}


def accepted_at(fold: dict, threshold: float) -> dict[str, float]:
    return {g: float(np.mean(fold[g] < threshold)) for g in SCORED}


def summary(folds: dict[str, dict]) -> dict:
    """The lowest threshold keeping FLOOR of every fold's digits, and each fold at it and at its own FLOOR point."""
    own = {s: float(np.nextafter(np.quantile(f["p_none"], FLOOR, method="higher"), 1)) for s, f in folds.items()}
    t = max(own.values())
    rows = {}
    for s, f in folds.items():
        accepted = f["p_none"] < t
        rows[s] = {"digits accepted": float(accepted.mean()), "digits right": float((accepted & f["right"]).mean()),
                   "digits right, argmax over digits": float(f["right"].mean()),
                   **accepted_at(f, t), "own threshold": own[s],
                   "words at own threshold": accepted_at(f, own[s])["words"]}  # fmt: skip
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    return {"threshold": t, "folds": rows, "mean": mean}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("emb", type=Path, help="folder of extract.py's files (above)")
    p.add_argument("--real-weight", type=float, default=4, help="sampling weight of an FSDD clip")
    p.add_argument("--other-weight", type=float, default=0.25, help="sampling weight of a Bengali/Ukrainian clip")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--digit-head", action="store_true", help="name the digit with a second, 10-class head")
    p.add_argument("--out", type=Path, help="write the summary as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    d = data(args.emb)
    folds = {s: fold(d, s, args) for s in sorted(set(d["fsdd"]["spk"]))}
    result = summary(folds) | {"args": {k: str(v) for k, v in vars(args).items()}}
    print(f"threshold keeping {FLOOR:.0%} of every fold's digits: p(none) < {result['threshold']:.3f}")
    print("| fold | " + " | ".join(result["mean"]) + " |")
    for name, row in [*result["folds"].items(), ("mean", result["mean"])]:
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
