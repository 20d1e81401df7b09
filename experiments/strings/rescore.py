"""Digit strings of held-out FSDD speakers through StringRecognizer, with and without rescoring by a single-digit
model that never heard the speaker either (experiments/strings/README.md, "Rescoring").

    python experiments/strings/rescore.py --fold STRING_RUN DIGIT_RUN [--fold ...] --data ../shared/data/fsdd/recordings
    python experiments/strings/rescore.py ... --weights 0 0.25 0.5 0.75 1    # the two models weighted otherwise

Each --fold pairs a string run and a single-digit run with the same held-out FSDD speaker (the string run's
test_speakers). Prints, per fold and on average, the digit error rate and exact match of the fold's 10-digit test
strings (the ones `audiomnist evaluate` scores) and the accuracy on the speaker's isolated clips, said with 200 ms
of background around (as evaluate scores them) and as the FSDD files are (trimmed close to the word).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from fold import held_out

from audiomnist.audio import full_scale
from audiomnist.ctc import decode, string_metrics
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, assemble, held_out_strings, load_clips

WAYS = {"string model": None, "rescored": "digit"}


def score_fold(string_run: Path, digit_run: Path, data: str, n: int, isolated: int, beam: int = 1) -> dict:
    speaker, seed, sr = held_out(string_run)
    clips = load_clips([data], sr, progress=False)
    ten = held_out_strings(clips, sr, [speaker], n, 10, seed)
    rng = np.random.default_rng(seed)
    own = [(a, t) for a, t, s in zip(clips.audio, clips.text, clips.speaker) if s == speaker][:isolated]
    single = [(assemble([a], sr, TEST_ASSEMBLY, rng)[0], t) for a, t in own]
    out: dict = {"speaker": speaker}
    for way, rescore in WAYS.items():
        rec = StringRecognizer.load(string_run, backend="torch", threads=1, rescore=digit_run if rescore else None)
        hyps = [rec.transcribe(x, sr, beam).digits for x, _ in ten]
        m = string_metrics([d for _, d in ten], hyps)
        iso = np.mean([rec.transcribe(x, sr, beam).digits == t for x, t in single])
        trimmed = np.mean([rec.transcribe(x, sr, beam).digits == t for x, t in own])  # the files as FSDD has them
        out[way] = {"digit_error_rate": m["digit_error_rate"], "exact_match": m["exact_match"], "isolated": iso,
                    "trimmed": trimmed}  # fmt: skip
    return out


def sweep_fold(string_run: Path, digit_run: Path, data: str, n: int, weights: list[float]) -> dict:
    """DER of the fold's test strings when each digit is argmax of w log p(single-digit) + (1 - w) log p(string)."""
    speaker, seed, sr = held_out(string_run)
    ten = held_out_strings(load_clips([data], sr, progress=False), sr, [speaker], n, 10, seed)
    rec = StringRecognizer.load(string_run, backend="torch", threads=1, rescore=digit_run)
    hyps: dict[float, list[str]] = {w: [] for w in weights}
    for x, _ in ten:
        x = full_scale(x)
        probs = rec.probabilities(x)
        hits = decode(probs, min_gap=rec.model.timing.min_gap)
        q = rec.rescorer_probabilities(hits, x, list(range(len(hits)))) if hits else np.zeros((0, 10))
        p = np.array([probs[h.frame, 1:] / probs[h.frame, 1:].sum() for h in hits]).reshape(-1, 10)
        q = np.where(np.isnan(q), p, q)  # no speech heard: the string model alone
        for w in weights:
            score = w * np.log(q + 1e-9) + (1 - w) * np.log(p + 1e-9)
            hyps[w].append("".join(str(k) for k in score.argmax(axis=1)))
    refs = [d for _, d in ten]
    return {"speaker": speaker, **{w: string_metrics(refs, h)["digit_error_rate"] for w, h in hyps.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fold", nargs=2, action="append", required=True, metavar=("STRING_RUN", "DIGIT_RUN"),
                    help="a string run and a single-digit run with the same held-out speaker (repeatable)")  # fmt: skip
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings per fold")
    ap.add_argument("--isolated", type=int, default=500, help="isolated clips per fold (at most the speaker's 500)")
    ap.add_argument("--beam", type=int, default=1, help="CTC beam (1: greedy, as listen and serve by default)")
    ap.add_argument("--out", help="write the table as JSON here")
    ap.add_argument("--weights", type=float, nargs="+", help="instead: the digit error rate at each weight w of the "
                    "single-digit model (0: the string model alone; 0.5: what StringRecognizer does)")  # fmt: skip
    args = ap.parse_args()
    if args.weights:
        rows = [sweep_fold(Path(s), Path(d), args.data, args.strings, args.weights) for s, d in args.fold]
        print("| held-out speaker | " + " | ".join(f"w {w:g}" for w in args.weights) + " |")
        for r in rows + [{"speaker": "mean", **{w: float(np.mean([r[w] for r in rows])) for w in args.weights}}]:
            print(f"| {r['speaker']} | " + " | ".join(f"{r[w]:.3f}" for w in args.weights) + " |", flush=True)
        return
    rows = [score_fold(Path(s), Path(d), args.data, args.strings, args.isolated, args.beam) for s, d in args.fold]
    print("| held-out speaker | " + " | ".join(f"{w}: DER / exact / isolated / trimmed" for w in WAYS) + " |")
    for r in rows + [{"speaker": "mean", **{w: {k: float(np.mean([r[w][k] for r in rows])) for k in rows[0][w]}
                                            for w in WAYS}}]:  # fmt: skip
        cells = [" / ".join(f"{r[w][k]:.3f}" for k in ("digit_error_rate", "exact_match", "isolated", "trimmed"))
                 for w in WAYS]  # fmt: skip
        print(f"| {r['speaker']} | " + " | ".join(cells) + " |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
