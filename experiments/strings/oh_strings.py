"""A string fold run, alone and rescored by single-digit runs, on the synthetic strings of its validation voices that
no none-recipe fold trained on (voices 500-599): all of them, and those that say 0 as "oh".

    python experiments/strings/oh_strings.py STRING_RUN DIGIT_RUN [DIGIT_RUN ...] --strings SYNTH_STRINGS
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audiomnist import ctc
from audiomnist.recognizer import StringRecognizer

FIRST_HELD_OUT_VOICE = 500  # the none recipe's folds train on synthetic voices 0-499


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("string_run", type=Path)
    p.add_argument("digit_runs", type=Path, nargs="+", help="rescoring single-digit runs")
    p.add_argument("--strings", type=Path, required=True, help="the synthetic strings folder (with takes.csv)")
    args = p.parse_args()
    val = set(json.loads((args.string_run / "metrics.json").read_text())["split"]["val_speakers"])
    with open(args.strings / "takes.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] in val and int(r["speaker"][1:6]) >= FIRST_HELD_OUT_VOICE]
    waves = [sf.read(args.strings / r["file"], dtype="float32") for r in rows]
    refs = [r["digit"] for r in rows]
    oh = np.array([" oh" in " " + r["word"] for r in rows])
    for spec in [None, *args.digit_runs]:
        rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=spec)
        hyps = [rec.transcribe(x, sr).digits for x, sr in waves]
        every = ctc.string_metrics(refs, hyps)
        said_oh = ctc.string_metrics([r for r, k in zip(refs, oh) if k], [h for h, k in zip(hyps, oh) if k])
        print(
            f"{spec.name if spec else 'alone':28s} {len(refs)} strings: digit error rate "
            f"{every['digit_error_rate']:.3f}, exact {every['exact_match']:.3f} | {oh.sum()} with 'oh': "
            f"{said_oh['digit_error_rate']:.3f}, {said_oh['exact_match']:.3f}"
        )


if __name__ == "__main__":
    main()
