"""Where the word sits in a recording: a model's answers on the same held-out clips said with quiet stretches before
and after them, as a user's recording is (corpus clips are trimmed to the word, and training centres them).

    python experiments/placement/placement.py RUN --data ../shared/data [--words DIR] [--n 500] [--out FILE.json]

Each clip is brought to a -6 dBFS peak, `before` and `after` seconds of silence are put around it, and white noise at
--room-db dBFS over the whole recording. Two windowings of the same recordings: "centred on the word" (what
Classifier.windows does: audio.centre_on_speech) and "loudest stretch" (the package before stop 40: the loudest
window-long stretch, audio.crop_on_energy, then centred). Groups: the run's held-out FSDD speakers' digits (answered
right, answered no digit) and, with --words, a folder of non-digit words (answered with a digit).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiomnist.audio import fit_windows, full_scale, load_audio, prepare
from audiomnist.infer import Classifier

PLACES = ((0.0, 0.0), (0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (1.5, 0.2), (0.2, 1.5), (2.0, 2.0))  # (before, after) s
PEAK = 10 ** (-6 / 20)


def loudest_stretch(clf: Classifier):
    """Classifier.windows as it was before stop 40: the loudest window-long stretch (audio.prepare), centred."""
    a = clf.cfg.audio
    return lambda clips: fit_windows([prepare(full_scale(np.asarray(c, np.float32)), a)[0] for c in clips], a)


def recordings(clips: list[np.ndarray], sr: int, before: float, after: float, room_db: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for x in clips:
        x = PEAK * x / max(float(np.abs(x).max()), 1e-9)
        rec = np.concatenate([np.zeros(round(before * sr)), x, np.zeros(round(after * sr))])
        out.append((rec + 10 ** (room_db / 20) * rng.standard_normal(rec.size)).astype(np.float32))
    return out


def answers(clf: Classifier, clips: list[np.ndarray], truth: list[str | None]) -> dict:
    preds = clf.predict_batch(clips, clf.sample_rate)
    labels = [p.label for p in preds]
    if truth[0] is None:
        return {"answered_a_digit": float(np.mean([lab is not None for lab in labels]))}
    return {"right": float(np.mean([lab == t for lab, t in zip(labels, truth)])),
            "no_digit": float(np.mean([lab is None for lab in labels]))}  # fmt: skip


def load_group(paths: list[Path], sr: int, n: int, labelled: bool) -> tuple[list[np.ndarray], list[str | None]]:
    paths = paths[:: max(1, len(paths) // n)][:n]
    return [load_audio(p, sr) for p in paths], [p.stem.split("_")[0] if labelled else None for p in paths]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run trained without the FSDD speakers it is tested on")
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd/recordings)")
    p.add_argument("--speaker", action="append", help="FSDD speakers to test (default: the run's test speakers)")
    p.add_argument("--words", type=Path, help="a folder of non-digit words (held-out voices)")
    p.add_argument("--n", type=int, default=500, help="clips per group at most (evenly spread)")
    p.add_argument("--room-db", type=float, action="append", help="noise level in dBFS (repeatable; default -60, -35)")
    p.add_argument("--none-threshold", type=float, help="p(none) that answers no digit (default: the run's own)")
    p.add_argument("--out", type=Path, help="FILE.json for the table")
    args = p.parse_args(argv)
    clf = Classifier.load(args.run, none_threshold=args.none_threshold)
    split = json.loads((args.run / "metrics.json").read_text())["split"] if not args.speaker else {}
    speakers = args.speaker or [s.split("/")[-1] for s in split["test_speakers"]]
    fsdd = sorted(f for f in (args.data / "fsdd" / "recordings").glob("*.wav") if f.stem.split("_")[1] in speakers)
    groups = {"fsdd " + "+".join(speakers): (fsdd, True)}
    if args.words:
        groups[f"words {args.words.name}"] = (sorted(args.words.glob("*.wav")), False)
    loaded = {name: load_group(paths, clf.sample_rate, args.n, lab) for name, (paths, lab) in groups.items()}
    ways = {"centred on the word": clf.windows, "loudest stretch": loudest_stretch(clf)}
    rows = []
    for room in args.room_db or [-60.0, -35.0]:
        for before, after in PLACES:
            for way, windows in ways.items():
                clf.windows = windows
                row = {"room_db": room, "before_s": before, "after_s": after, "windows": way}
                for name, (clips, truth) in loaded.items():
                    row[name] = answers(clf, recordings(clips, clf.sample_rate, before, after, room), truth)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        meta = {"run": str(args.run), "none_threshold": clf.none_threshold, "temperature": clf.temperature}
        args.out.write_text(json.dumps(meta | {"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
