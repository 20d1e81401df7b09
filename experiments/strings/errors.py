"""Where the digit errors of held-out speakers' 10-digit strings are: substitutions, deletions, insertions, with the
string model alone and rescored, and with the blank probability scaled before greedy decoding
(experiments/strings/README.md, "Where the errors are").

    python experiments/strings/errors.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings --blank 1 0.25
"""

from __future__ import annotations

import argparse

import numpy as np
from fold import add_fold_arguments, held_out

from audiomnist.audio import full_scale
from audiomnist.ctc import decode, rescore
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import held_out_strings, load_clips


def edit_ops(ref: str, hyp: str) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one minimal edit alignment."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), int)
    d[:, 0], d[0, :] = range(n + 1), range(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    i, j, sub, dele, ins = n, m, 0, 0, 0
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            sub, i, j = sub + (ref[i - 1] != hyp[j - 1]), i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            dele, i = dele + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return sub, dele, ins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings")
    ap.add_argument("--blank", type=float, nargs="+", default=[1.0], help="blank probability scales (1: as is)")
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    ten = held_out_strings(load_clips([args.data], sr, progress=False), sr, [speaker], args.strings, 10, seed)
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=args.digit_run)
    waves = [full_scale(x) for x, _ in ten]
    probs = [rec.probabilities(x) for x in waves]
    for scale in args.blank:
        alone, rescored = [], []
        for x, p in zip(waves, probs):
            p = p.copy()
            p[:, 0] *= scale
            p /= p.sum(axis=1, keepdims=True)
            hits = decode(p, min_gap=rec.model.timing.min_gap)
            alone.append("".join(h.digit for h in hits))
            q = rec.rescorer_probabilities(hits, x, list(range(len(hits)))) if hits else np.zeros((0, 10))
            rescored.append("".join(h.digit for h in rescore(hits, p, q)))
        for way, hyps in (("alone", alone), ("rescored", rescored)):
            sub, dele, ins = np.sum([edit_ops(d, h) for (_, d), h in zip(ten, hyps)], axis=0) / (10 * len(ten))
            print(f"{speaker} blank x {scale:g} {way}: DER {sub + dele + ins:.3f} = substituted {sub:.3f} + deleted "
                  f"{dele:.3f} + inserted {ins:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
