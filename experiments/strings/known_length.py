"""How much of a fold's error is the count of digits: the held-out speaker's ten-digit strings decoded by the string
model alone (as recorded, not slowed, not rescored), greedily as the package does, and by the best CTC path that
holds exactly as many digits as were said (a user who knows a phone number has ten digits could say so).

    python known_length.py RUN [RUN ...] --data FSDD [--strings 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fold import held_out, test_strings

from audiomnist import ctc
from audiomnist.audio import full_scale
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import load_clips


def best_path_of_length(probs: np.ndarray, n: int) -> str:
    """The likeliest single CTC path (Viterbi) that emits exactly `n` digits, as its digit string ("" if the frames
    cannot hold them). States: (digits emitted, the class of the current frame); a digit again needs a blank first."""
    logp = np.log(np.maximum(probs, 1e-30))
    frames, classes = logp.shape
    score = np.full((n + 1, classes), -np.inf)
    score[0, 0] = logp[0, 0]
    if n:
        score[1, 1:] = logp[0, 1:]
    back = np.zeros((frames, n + 1, classes, 2), np.int16)  # the previous (count, class)
    for t in range(1, frames):
        new = np.full_like(score, -np.inf)
        for c in range(n + 1):
            for k in range(classes):
                stay = score[c, k]  # the same class goes on (a blank run or the same digit's run)
                best, prev = stay, (c, k)
                if k == 0:  # a blank after a digit of this count
                    j = int(np.argmax(score[c, 1:])) + 1
                    if score[c, j] > best:
                        best, prev = score[c, j], (c, j)
                elif c > 0:  # a new digit: after a blank or another digit of one fewer
                    cand = score[c - 1].copy()
                    cand[k] = -np.inf
                    j = int(np.argmax(cand))
                    if cand[j] > best:
                        best, prev = cand[j], (c - 1, j)
                new[c, k] = best + logp[t, k]
                back[t, c, k] = prev
        score = new
    if not np.isfinite(score[n]).any():
        return ""
    states = [(n, int(np.argmax(score[n])))]
    for t in range(frames - 1, 0, -1):
        states.append(tuple(int(v) for v in back[t, states[-1][0], states[-1][1]]))
    states.reverse()
    return "".join(
        ctc.STRING_CLASSES[k] for t, (c, k) in enumerate(states) if k and c != (states[t - 1][0] if t else 0)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="string runs with one held-out FSDD speaker each")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--strings", type=int, default=200, help="test strings per fold")
    ap.add_argument("--pace", type=float, nargs="+", default=[1.0, 1.3], help="test strings said this much faster")
    args = ap.parse_args()
    print("| fold | pace | wrong count | DER / exact, greedy | DER / exact, known length |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        rec = StringRecognizer.load(str(run), backend="torch", threads=1, rescore=None, pace=None)
        speaker, seed, sr = held_out(run)
        clips = load_clips([args.data], sr, progress=False)
        for s in args.pace:
            items = test_strings(clips, sr, speaker, seed, args.strings, stretch=(s, s))
            refs, greedy, fixed = [d for _, d in items], [], []
            for x, d in items:
                _, _, probs, hits = rec._decode(full_scale(x), sr, 1, False, True)
                greedy.append("".join(h.digit for h in hits))
                fixed.append(best_path_of_length(probs, len(d)))
            g, k = ctc.string_metrics(refs, greedy), ctc.string_metrics(refs, fixed)
            wrong = np.mean([len(h) != len(r) for h, r in zip(greedy, refs)])
            print(f"| {speaker} | x{s:g} | {100 * wrong:.0f} % | {100 * g['digit_error_rate']:.1f} / "
                  f"{100 * g['exact_match']:.0f} | {100 * k['digit_error_rate']:.1f} / {100 * k['exact_match']:.0f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
