"""Words that are not digits, heard by string runs that hold out one FSDD speaker: (a) the speaker's ten-digit test
strings as they are, (b) the same strings with 1-2 unseen non-digit words said among the digits, (c) 1-3 unseen
words alone. The words are those of experiments/no-digit's held-out list said by held-out synthetic voices
(NEGDIR/neg-heldout-words); every string model is scored alone, as recorded (not slowed, not rescored).

    python with_words.py RUN [RUN ...] --data FSDD --words NEGDIR/neg-heldout-words [--strings 200]
        [--word-weights 1 0.3 0.1 0]

--word-weights: a run trained with --word-class is scored once per weight (its word_weight replaced; a row each).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from fold import held_out, test_strings

from audiomnist import ctc
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, list_negatives, load_clips


def utterances(clips, words, sr: int, speaker: str, seed: int, n: int) -> tuple[list, list]:
    """(b) and (c): the speaker's strings with words among the digits, and words alone (digits ""), fixed by seed."""
    maker = StringMaker(clips, sr, TEST_ASSEMBLY)
    rng = np.random.default_rng([seed, 0, 77])

    def some(k: int) -> list[np.ndarray]:
        return [words.audio[i] for i in rng.integers(len(words), size=k)]

    mixed = [maker.make(rng, speaker, 10, others=some(int(rng.integers(1, 3)))) for _ in range(n)]
    alone = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        alone.append((maker.make(rng, speaker, 0, others=some(k))[0], k))
    return mixed, alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="string runs with one held-out FSDD speaker each")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--words", required=True, help="non-digit words of held-out voices")
    ap.add_argument("--strings", type=int, default=200, help="utterances of each kind per run")
    ap.add_argument("--word-weights", type=float, nargs="+", default=[], help="word-class runs: weights to score")
    args = ap.parse_args()
    print("| run | strings: DER / exact | with 1-2 words among the digits: DER / exact | words alone: digits a word, "
          "utterances with no digit |")  # fmt: skip
    print("|---|---|---|---|")
    for run in args.runs:
        rec = StringRecognizer.load(str(run), backend="torch", threads=1, rescore=None, pace=None)
        speaker, seed, sr = held_out(run)
        clips = load_clips([args.data], sr, progress=False)
        words = load_clips([args.words], sr, progress=False, lister=list_negatives)
        plain = test_strings(clips, sr, speaker, seed, args.strings)
        mixed, alone = utterances(clips, words, sr, speaker, seed, args.strings)
        pipeline = rec.model.pipeline
        weights = args.word_weights if pipeline.cfg.word_class and args.word_weights else [None]
        for w in weights:
            if w is not None:
                pipeline.cfg = dataclasses.replace(pipeline.cfg, word_weight=w)
            cells = []
            for items in (plain, mixed):
                m = ctc.string_metrics([d for _, d in items], [rec.transcribe(x, sr).digits for x, _ in items])
                cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f}")
            heard = [len(rec.transcribe(x, sr).digits) for x, _ in alone]
            per_word = sum(heard) / sum(k for _, k in alone)
            cells.append(f"{per_word:.2f}, {100 * np.mean(np.array(heard) == 0):.0f} %")
            name = run.name if w is None else f"{run.name}, word weight {w:g}"
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
