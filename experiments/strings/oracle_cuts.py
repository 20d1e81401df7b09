"""Rescoring with the true word boundaries of the assembled test strings (an oracle): how much better cuts could
give, and the single-digit model alone on the true words (experiments/strings/README.md, "Where the errors are").

    python experiments/strings/oracle_cuts.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings --strings 100
"""

from __future__ import annotations

import argparse

import numpy as np
from fold import add_fold_arguments, held_out

from audiomnist.audio import full_scale
from audiomnist.ctc import FIRST_WORD_S, PAD_S, decode, rescore, string_metrics
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, load_clips


def true_segments(x: np.ndarray, ends: np.ndarray, sr: int) -> list[np.ndarray]:
    """Each word from the previous word's true end to its own, PAD_S wider: word_segments' geometry on the truth."""
    out = []
    for i, end in enumerate(ends):
        start = ends[i - 1] if i else max(0, end - int(FIRST_WORD_S * sr))
        out.append(x[max(0, start - int(PAD_S * sr)) : min(len(x), end + int(PAD_S * sr))])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    ap.add_argument("--strings", type=int, default=100, help="10-digit strings, said as the test's are")
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    maker = StringMaker(load_clips([args.data], sr, progress=False), sr, TEST_ASSEMBLY)
    rng = np.random.default_rng([seed, 0, 10])
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=args.digit_run)
    refs: list[str] = []
    hyps: dict[str, list[str]] = {k: [] for k in ("peak cuts, rescored", "true cuts, rescored", "true cuts alone")}
    for _ in range(args.strings):
        x, digits, ends = maker.make_timed(rng, speaker, 10)
        x = full_scale(x)
        probs = rec.probabilities(x)
        hits = decode(probs, min_gap=rec.model.timing.min_gap)
        refs.append(digits)
        q = rec.rescorer_probabilities(hits, x, list(range(len(hits)))) if hits else np.zeros((0, 10))
        cut = "".join(h.digit for h in rescore(hits, probs, q))
        truth = rec.rescorer.gated_probabilities(true_segments(x, ends, sr))[1][:, rec._columns]
        hyps["peak cuts, rescored"].append(cut)
        # where the count is wrong the true words cannot be paired with the hits: the peak cuts' answer stands
        hyps["true cuts, rescored"].append(
            "".join(h.digit for h in rescore(hits, probs, truth)) if len(hits) == 10 else cut
        )
        hyps["true cuts alone"].append("".join(str(int(np.argmax(r))) for r in truth))
    for way, h in hyps.items():
        m = string_metrics(refs, h)
        print(f"{speaker} {way}: DER {m['digit_error_rate']:.3f}, exact {m['exact_match']:.3f}", flush=True)


if __name__ == "__main__":
    main()
