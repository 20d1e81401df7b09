"""Two or more string runs of one fold heard together: each run alone and their frame probabilities combined (the
mean of the probabilities, and their normalised geometric mean), on the held-out speaker's 10-digit test strings
at each --tempo (experiments/strings/README.md, "Two heads").

    python experiments/strings/ensemble.py STRING_RUN STRING_RUN... --digit-run DIGIT_RUN|none \
        --data ../shared/data/fsdd/recordings

The runs must hold out the same speaker; the test strings are the first run's (its seed), so every row reads the
same audio. The runs share the speech_embedding encoder, so their heads can be combined frame by frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fold import held_out, recognizer, test_strings

from audiomnist import ctc
from audiomnist.strings import load_clips

COMBINE = {
    "mean": lambda ps: np.mean(ps, axis=0),
    "geometric": lambda ps: _normalise(np.exp(np.mean(np.log(np.maximum(ps, 1e-12)), axis=0))),
}


def _normalise(p: np.ndarray) -> np.ndarray:
    return p / p.sum(axis=-1, keepdims=True)


class _Combined:
    """Stands in for a recogniser's model: the members' probabilities of the same audio, combined."""

    def __init__(self, members: list, how: str):
        self.members, self.how = members, how
        self.info, self.timing = members[0].info, members[0].timing

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        ps = [m.probabilities(wave) for m in self.members]
        frames = min(len(p) for p in ps)
        return COMBINE[self.how](np.stack([p[:frames] for p in ps])).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("string_runs", type=Path, nargs="+", help="string runs holding out the same FSDD speaker")
    ap.add_argument(
        "--digit-run", default="none", help="single-digit run that rescored (none: the string models alone)"
    )
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings per tempo")
    ap.add_argument("--tempo", type=float, nargs="+", default=[1.0], help="speed factors (1: as recorded)")
    ap.add_argument("--speed-by", choices=["tempo", "stretch"], default="tempo", help="resampled or stretched")
    args = ap.parse_args()
    folds = [held_out(r) for r in args.string_runs]
    if len({f[0] for f in folds}) != 1:
        raise SystemExit(f"the runs hold out different speakers: {[f[0] for f in folds]}")
    speaker, seed, _ = folds[0]
    recs = [recognizer(r, args.digit_run) for r in args.string_runs]
    sr = recs[0].sample_rate
    clips = load_clips([args.data], sr, progress=False)
    rows = [(r.name, rec) for r, rec in zip(args.string_runs, recs)]
    for how in COMBINE:
        both = recognizer(args.string_runs[0], args.digit_run)
        both.model = _Combined([rec.model for rec in recs], how)
        rows.append((f"{how} of {len(recs)}", both))
    print(f"| {speaker} (rescored by {args.digit_run}) | " + " | ".join(f"tempo {t}" for t in args.tempo) + " |")
    print("|---" * (len(args.tempo) + 1) + "|")
    items = {}
    for tempo in args.tempo:
        items[tempo] = test_strings(clips, sr, speaker, seed, args.strings, **{args.speed_by: (tempo, tempo)})
    for name, rec in rows:
        cells = []
        for tempo in args.tempo:
            refs = [d for _, d in items[tempo]]
            m = ctc.string_metrics(refs, [rec.transcribe(x, sr).digits for x, _ in items[tempo]])
            cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
