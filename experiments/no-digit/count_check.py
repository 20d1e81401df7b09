"""A second opinion for "not a digit": accept a clip only if the digit-string model also finds exactly one digit in
it (experiments/no-digit/README.md, "The string model's count as a second test"; measured, not adopted).

    audiomnist predict FOLDER --model NO_DIGIT_RUN --none-threshold 0.9 --format csv > FOLDER.csv   # digits, words
    python experiments/no-digit/count_check.py STRING_RUN DIGITS.csv WORDS.csv

STRING_RUN must hold out the digits' speaker; the digits CSV's files are named {digit}_{speaker}_{take}.wav.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from audiomnist.recognizer import StringRecognizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("string_run", type=Path, help="a digit-string run")
    ap.add_argument("digits", type=Path, help="predict's CSV for a held-out speaker's digit clips")
    ap.add_argument("words", type=Path, help="predict's CSV for non-digit words")
    args = ap.parse_args()
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=None)
    for table, digits in ((args.digits, True), (args.words, False)):
        rows = list(csv.DictReader(table.open()))
        kept = kept_one = right = right_one = 0
        for r in rows:
            if r["prediction"] in ("", "-") or r["reason"]:
                continue
            one = len(rec.transcribe_file(r["path"]).digits) == 1
            ok = digits and r["prediction"] == Path(r["path"]).name[0]
            kept, kept_one, right, right_one = kept + 1, kept_one + one, right + ok, right_one + (ok and one)
        n = max(len(rows), 1)
        line = f"{table.name}: accepted {kept / n:.3f} -> {kept_one / n:.3f} with one string digit"
        print(line + (f"; right {right / n:.3f} -> {right_one / n:.3f}" if digits else ""), flush=True)


if __name__ == "__main__":
    main()
