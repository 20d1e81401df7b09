"""Where an emb-ctc string model's peaks fall in its words, and rescoring its digits with a single-digit model cut
at those places (experiments/strings/README.md, "A string model on the speech_embedding encoder").

    python experiments/strings/emb_timing.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings [--strings 200]

The fold's 10-digit test strings (the held-out speaker, said as the test says them) are made with their true word
ends. For every string decoded with ten digits, each peak's time is compared with its word's true end. Then the
strings are decoded alone and rescored by DIGIT_RUN (a run that held out the same speaker) with the cut's
peak-to-end offset (the recogniser's cut: ctc.Timing.cut_s) at each --offsets value.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from fold import add_fold_arguments, held_out

from audiomnist import ctc
from audiomnist.audio import full_scale
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, load_clips

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "placement"))
from placement import loudest_stretch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings")
    ap.add_argument("--offsets", type=float, nargs="+", default=[0.07, 0.15, 0.25, 0.35, 0.39], help="peak-to-end, s")
    ap.add_argument("--loudest-stretch", action="store_true",
                    help="the rescorer's windows as before stop 40: each cut's loudest stretch, centred")  # fmt: skip
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    maker = StringMaker(load_clips([args.data], sr, progress=False), sr, TEST_ASSEMBLY)
    rng = np.random.default_rng([seed, 0, 10])
    items = [maker.make_timed(rng, speaker, 10) for _ in range(args.strings)]
    alone = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=None)
    gaps = []
    for x, digits, ends in items:
        w, lead = ctc.pad_edges(full_scale(x), sr)
        hits = ctc.decode(alone.probabilities(w), min_gap=alone.model.timing.min_gap)
        if len(hits) == len(digits):
            gaps += [e / sr + lead - h.frame * alone.frame_seconds for h, e in zip(hits, ends)]
    q = np.percentile(gaps, [10, 50, 90])
    print(f"{speaker}: word end - peak, over {len(gaps)} words: p10 {q[0]:.3f} s, median {q[1]:.3f}, p90 {q[2]:.3f}")
    refs = [d for _, d, _ in items]
    m = ctc.string_metrics(refs, [alone.transcribe(x, sr).digits for x, _, _ in items])
    print(f"| {speaker} | alone | {m['digit_error_rate']:.3f} | {m['exact_match']:.3f} |")
    rescored = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=args.digit_run)
    if args.loudest_stretch:
        rescored.rescorer.windows = loudest_stretch(rescored.rescorer)
    for off in args.offsets:
        rescored.model.timing = replace(rescored.model.timing, cut_s=off)  # where each word is cut to end
        m = ctc.string_metrics(refs, [rescored.transcribe(x, sr).digits for x, _, _ in items])
        print(
            f"| {speaker} | rescored, peak-to-end {off:.2f} s | {m['digit_error_rate']:.3f} | {m['exact_match']:.3f} |"
        )


if __name__ == "__main__":
    main()
