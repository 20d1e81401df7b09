"""Could a number's rescorer also reject words? Each digit whose stretch the single-digit model calls "none" (p(none)
at or above a threshold) is dropped; scored on the held-out speaker's 10-digit strings and on utterances of 1-4
unseen non-digit words (experiments/strings/README.md, "Rejecting words in a number").

    python experiments/strings/none_drop.py STRING_RUN NO_DIGIT_RUN --data ../shared/data/fsdd/recordings \
        --words NEG/neg-heldout-words [--thresholds 0.5 0.9 0.97]

NO_DIGIT_RUN: a single-digit run with a none class holding out the string run's test speaker.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fold import held_out

from audiomnist.audio import full_scale, load_audio
from audiomnist.ctc import decode, string_metrics, word_segments
from audiomnist.onnx_model import NONE_CLASS
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, assemble, held_out_strings, load_clips


def heard(rec: StringRecognizer, x: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Hits, the string model's probabilities and the rescorer's (all classes; NaN rows: no speech in the word)."""
    x = full_scale(x)
    probs = rec.probabilities(x)
    hits = decode(probs, min_gap=rec.model.timing.min_gap)
    _, q = rec.rescorer.gated_probabilities(word_segments(hits, x, rec.sample_rate, rec.frame_seconds))
    return hits, probs, q


def digits(item: tuple, columns: list[int], none: int, threshold: float | None) -> str:
    out = ""
    hits, probs, q = item
    for h, row in zip(hits, q):
        if np.isnan(row).any():
            out += h.digit
            continue
        if threshold is not None and row[none] >= threshold:
            continue
        p = probs[h.frame, 1:] / probs[h.frame, 1:].sum()
        q = row[columns] / row[columns].sum()
        out += str(int(np.argmax(np.sqrt(p * q))))
    return out


def word_utterances(folder: Path, sr: int, n: int) -> tuple[list[np.ndarray], int]:
    by_voice: dict[str, list[Path]] = {}
    for p in sorted(folder.glob("*.wav")):
        by_voice.setdefault(p.stem.split("_")[1], []).append(p)
    voices, rng, out, count = sorted(by_voice), np.random.default_rng(0), [], 0
    for _ in range(n):
        clips = by_voice[voices[rng.integers(len(voices))]]
        k = int(rng.integers(1, 5))
        out.append(assemble([load_audio(clips[j], sr) for j in rng.integers(0, len(clips), k)], sr, TEST_ASSEMBLY,
                            rng)[0])  # fmt: skip
        count += k
    return out, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("string_run", type=Path)
    ap.add_argument("no_digit_run", type=Path)
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--words", type=Path, required=True, help="non-digit words held out from both runs")
    ap.add_argument("--n", type=int, default=100, help="digit strings and word utterances")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9, 0.97])
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=args.no_digit_run)
    none, columns = rec.rescorer.classes.index(NONE_CLASS), [rec.rescorer.classes.index(str(d)) for d in range(10)]
    ten = held_out_strings(load_clips([args.data], sr, progress=False), sr, [speaker], args.n, 10, seed)
    strings = [heard(rec, x) for x, _ in ten]
    waves, n_words = word_utterances(args.words, sr, args.n)
    said = [heard(rec, x) for x in waves]
    print(f"| drop at p(none) >= | {speaker}: DER / exact | words: digits per word / utterances with a digit |")
    print("|---|---|---|")
    for th in [None, *args.thresholds]:
        m = string_metrics([d for _, d in ten], [digits(s, columns, none, th) for s in strings])
        got = [digits(s, columns, none, th) for s in said]
        print(f"| {th or 'never'} | {m['digit_error_rate']:.3f} / {m['exact_match']:.3f} | "
              f"{sum(map(len, got)) / n_words:.3f} / {np.mean([g != '' for g in got]):.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
