"""How far apart two CTC peaks must be to count as two digits (ctc.MIN_GAP_S), at the test's pace and faster: the
held-out speaker's 10-digit test strings said at each --tempo, decoded with each --gaps (in output frames), the
string model alone and rescored (experiments/strings/README.md, "Close peaks").

    python experiments/strings/close_peaks.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings

STRING_RUN may also be a shipped model's name with --speaker (its training speakers' strings: no held-out claim).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from fold import add_fold_arguments, held_out, recognizer, test_strings

from audiomnist import ctc
from audiomnist.audio import full_scale
from audiomnist.strings import load_clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings per tempo")
    ap.add_argument("--tempo", type=float, nargs="+", default=[1.0, 1.15], help="speed factors (1: as recorded)")
    ap.add_argument(
        "--speed-by",
        choices=["tempo", "stretch"],
        default="tempo",
        help="how --tempo speeds the words up: resampled (voice raised too) or stretched (pitch kept)",
    )
    ap.add_argument("--gaps", type=int, nargs="+", default=[1, 2, 3], help="min_gap values (frames) to decode with")
    ap.add_argument("--speaker", help="the speaker, where STRING_RUN is a shipped model's name")
    args = ap.parse_args()
    if args.speaker:
        speaker, seed = args.speaker, 0
    else:
        speaker, seed, _ = held_out(args.string_run)
    rec = recognizer(args.string_run, args.digit_run)  # DIGIT_RUN "none": the string model alone
    sr, shipped = rec.sample_rate, rec.model.timing
    clips = load_clips([args.data], sr, progress=False)
    print(f"| {speaker}: tempo | peaks 1 / 2 / 3 frames apart | " + " | ".join(f"min_gap {g}" for g in args.gaps))
    for tempo in args.tempo:
        items = test_strings(clips, sr, speaker, seed, args.strings, **{args.speed_by: (tempo, tempo)})
        refs = [d for _, d in items]
        gaps = []
        for x, _ in items:
            hits = ctc.greedy(rec.probabilities(ctc.pad_edges(full_scale(x), sr)[0]))
            gaps += [b.frame - a.frame for a, b in zip(hits, hits[1:])]
        near = np.bincount(gaps, minlength=4)[1:4]
        cells = []
        for g in args.gaps:
            rec.model.timing = replace(shipped, min_gap=g)
            m = ctc.string_metrics(refs, [rec.transcribe(x, sr).digits for x, _ in items])
            cells.append(f"{m['digit_error_rate']:.3f} / {m['exact_match']:.3f}")
        print(f"| {tempo:.2f} | {' / '.join(map(str, near))} of {len(gaps)} | " + " | ".join(cells), flush=True)
    rec.model.timing = shipped


if __name__ == "__main__":
    main()
