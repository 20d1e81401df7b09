"""Isolated digits said as a number: when the string model finds one digit, the single-digit model on the whole
utterance instead of on the cut word (experiments/strings/README.md, "Where the errors are"; not adopted).

    python experiments/strings/one_word.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings
"""

from __future__ import annotations

import argparse

import numpy as np
from fold import add_fold_arguments, held_out

from audiomnist.audio import full_scale
from audiomnist.ctc import decode, rescore
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, assemble, load_clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    clips = load_clips([args.data], sr, progress=False)
    rng = np.random.default_rng(seed)  # the clips rescore.py scores as "isolated"
    own = [(a, t) for a, t, s in zip(clips.audio, clips.text, clips.speaker) if s == speaker]
    single = [(assemble([a], sr, TEST_ASSEMBLY, rng)[0], t) for a, t in own]
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=args.digit_run)
    right = {"cut word, rescored": 0, "whole utterance, rescored": 0, "whole utterance, single-digit model": 0}
    for x, t in single:
        x = full_scale(x)
        probs = rec.probabilities(x)
        hits = decode(probs, min_gap=rec.model.timing.min_gap)
        heard = rec.rescorer_probabilities(hits, x, list(range(len(hits)))) if hits else np.zeros((0, 10))
        cut = "".join(h.digit for h in rescore(hits, probs, heard))
        right["cut word, rescored"] += cut == t
        if len(hits) != 1:  # not one word: the cut-word answer stands
            right["whole utterance, rescored"] += cut == t
            right["whole utterance, single-digit model"] += cut == t
            continue
        q = rec.rescorer.gated_probabilities([x])[1][:, rec._columns]
        right["whole utterance, rescored"] += rescore(hits, probs, q)[0].digit == t
        alone = hits[0].digit if np.isnan(q).any() else str(int(np.argmax(q[0])))
        right["whole utterance, single-digit model"] += alone == t
    print(speaker, ", ".join(f"{k} {v / len(single):.3f}" for k, v in right.items()), flush=True)


if __name__ == "__main__":
    main()
