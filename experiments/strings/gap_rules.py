"""Rules for when two close CTC peaks are one word, on several held-out folds at once: the string model alone on
each fold's 200 ten-digit test strings at the recorded pace and 15 % faster (experiments/strings/README.md, "Close
peaks"; the table is `results/close-peaks/six-folds-alone-rules.md`).

    python experiments/strings/gap_rules.py STRING_RUN [STRING_RUN ...] --data ../shared/data/fsdd/recordings

Rules: g1/g2/g3 merge peaks under 1/2/3 frames apart (ctc.merge_close); "mid-nonblank" merges under 2 frames, and
2 frames apart when the frame between them is not a blank; "blank<x" when that frame's blank probability is under x.
"""

from __future__ import annotations

import argparse

import numpy as np
from fold import held_out, recognizer, test_strings

from audiomnist import ctc
from audiomnist.audio import full_scale
from audiomnist.ctc import DigitHit, greedy, merge_close
from audiomnist.strings import load_clips

RULES = ["g1", "g2", "g3", "mid-nonblank", "blank<0.3", "blank<0.5", "blank<0.7"]


def merge_by_middle(p: np.ndarray, rule: str) -> list[DigitHit]:
    """Greedy hits, merged under 2 frames apart and at 2 frames when the middle frame says so (as merge_close)."""
    out: list[DigitHit] = []
    for h in greedy(p):
        gap = h.frame - out[-1].frame if out else 99
        mid = p[out[-1].frame + 1] if gap == 2 else None
        two = mid is not None and (mid.argmax() != 0 if rule == "mid-nonblank" else mid[0] < float(rule[6:]))
        if gap < 2 or two:
            out[-1] = merge_close([out[-1], h], p, gap + 1)[0]  # merge_close's merged digit, whatever the gap
        else:
            out.append(h)
    return out


def decode(p: np.ndarray, rule: str) -> str:
    hits = merge_close(greedy(p), p, int(rule[1])) if rule[0] == "g" else merge_by_middle(p, rule)
    return "".join(h.digit for h in hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("string_runs", nargs="+", help="string runs, each with one held-out FSDD speaker")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    args = ap.parse_args()
    for tempo in (1.0, 1.15):
        print(f"| tempo {tempo}: held-out speaker | " + " | ".join(RULES) + " |")
        means: dict[str, list[float]] = {r: [] for r in RULES}
        for run in args.string_runs:
            speaker, seed, _ = held_out(run)
            rec = recognizer(run, "none")
            sr = rec.sample_rate
            items = test_strings(
                load_clips([args.data], sr, progress=False), sr, speaker, seed, 200, tempo=(tempo,) * 2
            )
            probs = [rec.probabilities(ctc.pad_edges(full_scale(x), sr)[0]) for x, _ in items]
            cells = []
            for r in RULES:
                m = ctc.string_metrics([d for _, d in items], [decode(p, r) for p in probs])
                means[r].append(100 * m["digit_error_rate"])
                cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f}")
            print(f"| {speaker} | " + " | ".join(cells) + " |", flush=True)
        print("| mean DER | " + " | ".join(f"{np.mean(means[r]):.2f}" for r in RULES) + " |")


if __name__ == "__main__":
    main()
