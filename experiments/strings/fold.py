"""What the scripts of this folder share: a string run's leave-one-speaker-out fold, and their fold arguments."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, Clips, StringMaker


def held_out(string_run: str | Path) -> tuple[str, int, int]:
    """(held-out FSDD speaker, seed, sample rate) of a string run, from its config.json."""
    cfg = json.loads((Path(string_run) / "config.json").read_text())
    return cfg["test_speakers"][0], cfg["seed"], cfg["audio"]["sample_rate"]


def recognizer(string_run: str | Path, digit_run: str | Path) -> StringRecognizer:
    """The fold's StringRecognizer (torch, one thread), rescored by `digit_run` unless it is "none" (the string model
    alone). Either may be a shipped model's name as well as a run folder."""
    rescore = None if str(digit_run) == "none" else str(digit_run)
    return StringRecognizer.load(str(string_run), backend="torch", threads=1, rescore=rescore)


def test_strings(clips: Clips, sr: int, speaker: str, seed: int, n: int, **assembly) -> list[tuple[np.ndarray, str]]:
    """The fold's `n` ten-digit test strings, (waveform, digits): the same digits and takes in every script (rng
    [seed, 0, 10]), said as TEST_ASSEMBLY with `assembly`'s fields replaced (tempo=(t, t), stretch=(s, s), ...)."""
    maker = StringMaker(clips, sr, replace(TEST_ASSEMBLY, **assembly))
    rng = np.random.default_rng([seed, 0, 10])
    return [maker.make(rng, speaker, 10) for _ in range(n)]


def add_fold_arguments(ap: argparse.ArgumentParser) -> None:
    """STRING_RUN DIGIT_RUN --data: one fold, as the single-fold scripts take it."""
    ap.add_argument("string_run", type=Path, help="a string run with one held-out FSDD speaker")
    ap.add_argument("digit_run", type=Path, help="a single-digit run that held out the same speaker")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
