"""The p(none) threshold for a shipped model, from measure.py's results on several held-out folds.

    python experiments/no-digit/thresholds.py results/C-seed*.json [--digits 0.97]

For each threshold (and argmax) prints, per fold and as the mean and worst fold: held-out FSDD digits accepted and
answered right, non-digit words, other-language words and noise accepted as digits; then picks the lowest threshold
at which every fold accepts at least --digits of its held-out FSDD speaker's digits (the issue's floor).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD, WORDS, SEEN, OTHER, NOISE = (
    "fsdd digits, held-out speaker",
    "held-out words, held-out voices",
    "train-list words, held-out voices",
    "bengali + ukrainian, held-out speakers",
    "noise, held out",
)


def at(group: dict, threshold: float | None) -> dict:
    """The group's row at a p(none) threshold (None: argmax, the min_prob 0 row)."""
    rows = group["min_prob"] if threshold is None else group["none_threshold"]
    key, want = ("min_prob", 0.0) if threshold is None else ("none_threshold", threshold)
    return next(r for r in rows if r[key] == want)


def row(fold: dict, threshold: float | None) -> dict:
    g = fold["groups"]
    digits = at(g[FSDD], threshold)
    out = {"digits accepted": digits["accepted"], "digits right": digits["accepted"] * digits["accuracy_on_accepted"]}
    for name, group in (("held-out words", WORDS), ("train-list words", SEEN), ("other languages", OTHER),
                        ("noise", NOISE)):  # fmt: skip
        out[name] = at(g[group], threshold)["accepted"]
    return out


def header(first: str, fold: dict) -> None:
    """A markdown table's head: `first`, then row()'s columns."""
    columns = [first, *row(fold, None)]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, help="measure.py --out files, one per fold")
    p.add_argument("--digits", type=float, default=0.97, help="share of held-out FSDD digits every fold must keep")
    p.add_argument("--at", type=float, help="threshold of the per-fold table (default: the one picked)")
    args = p.parse_args()
    folds = [json.loads(f.read_text()) for f in args.results]
    thresholds = [None] + [r["none_threshold"] for r in folds[0]["groups"][FSDD]["none_threshold"]]
    print(f"{len(folds)} folds: " + ", ".join(f["run"].rsplit("/", 1)[-1] for f in folds))
    print(f"mean temperature {sum(f['temperature'] for f in folds) / len(folds):.3f}")
    header("p(none) threshold", folds[0])
    chosen = None
    for t in thresholds:
        rows = [row(f, t) for f in folds]
        cells = []
        for k in rows[0]:
            v = [r[k] for r in rows]
            worst = min(v) if k.startswith("digits") else max(v)
            cells.append(f"{sum(v) / len(v):.3f} ({worst:.3f})")
        print(f"| {'argmax' if t is None else t} | " + " | ".join(cells) + " |")
        if chosen is None and t is not None and min(r["digits accepted"] for r in rows) >= args.digits:
            chosen = t
    print("cells: mean over folds (worst fold)")
    print(f"lowest threshold keeping >= {args.digits:.0%} of every fold's FSDD digits: {chosen}")
    per_fold(folds, chosen if args.at is None else args.at)


def held_out_fsdd(run: str) -> str:
    """The FSDD speaker a run tested on (its metrics.json split), or '?' where the run folder is gone."""
    metrics = Path(run) / "metrics.json"
    if not metrics.is_file():
        return "?"
    test = json.loads(metrics.read_text())["split"]["test_speakers"]
    return ", ".join(s for s in test if s in FSDD_SPEAKERS) or "?"


def per_fold(folds: list[dict], threshold: float | None) -> None:
    print(f"\nper fold at p(none) threshold {threshold} (T = each fold's own):")
    header("fold (held-out FSDD speaker)", folds[0])
    for f in folds:
        cells = " | ".join(f"{v:.3f}" for v in row(f, threshold).values())
        print(f"| {f['run'].rsplit('/', 1)[-1]} ({held_out_fsdd(f['run'])}) | {cells} |")


if __name__ == "__main__":
    main()
