"""Reliability of `predict`: every file of the bad corpus gets an answer, a "no digit" with its reason, or one line
naming it and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audiomnist.infer import Classifier, find_audio

from conftest import BROKEN, NON_UTF8, ODD, ONE_THREAD_ENV, UNLABELLED

# In-process torch on one thread, like the ONE_THREAD_ENV subprocesses whose numbers these tests compare with.
pytestmark = pytest.mark.usefixtures("one_thread")
# NaN and inf samples decode: they are answered "no digit" (bad samples), not refused as unreadable.
NON_FINITE = {name for name, word in BROKEN.items() if word == "nan"}
UNREADABLE = {name: word for name, word in BROKEN.items() if name not in NON_FINITE}


def test_predict_files_reports_each_bad_file_and_predicts_the_rest(corpus, trained):
    clf = Classifier.load(trained[0])
    problems: list[tuple[str, str]] = []
    paths = find_audio([str(corpus)], problems)
    assert not any("loop" in str(p) for p in paths)
    assert [Path(p).name for p, _ in problems] == [NON_UTF8] and "UTF-8" in problems[0][1]
    preds, errors = clf.predict_files(paths)
    failed = {Path(e.path).name: e for e in errors}
    assert sorted(failed) == sorted(UNREADABLE), [str(e) for e in errors]
    for name, e in failed.items():
        assert name in str(e) and UNREADABLE[name] in e.reason.lower(), str(e)
    answers = {Path(p.path).name: p for p in preds}
    assert set(ODD) | {UNLABELLED} <= set(answers)
    for name in NON_FINITE:
        assert answers[name].label is None and answers[name].reason == "bad samples", answers[name]
    assert len(preds) + len(errors) == len(paths)


def test_predict_cli_prints_every_file_it_could_read(corpus, trained):
    """A real process with a strict UTF-8 stdout (as under en_US.UTF-8): a name that is not UTF-8 must not crash it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiomnist.cli",
            "predict",
            str(corpus / "01"),
            "--model",
            str(trained[0]),
            "--no-progress",
        ],
        env={**ONE_THREAD_ENV, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        timeout=300,
    )
    stdout, stderr = (s.decode("utf-8", "backslashreplace") for s in (proc.stdout, proc.stderr))
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped:")]
    # The name that is not UTF-8 is listed too, printably.
    assert sorted(Path(line.split(": ")[1]).name for line in skipped) == sorted([*UNREADABLE, "4_01_\\xff\\xfe.wav"])
    # 01/loop links back to the corpus root: its other speakers' folders are read once, through it.
    rows = [line for line in stdout.splitlines() if line.startswith(str(corpus / "01")) and "/loop/" not in line]
    files = [p for p in (corpus / "01").iterdir() if p.is_file()]
    assert len(rows) == len(files) - len(UNREADABLE) - 1, stdout
    assert sum(" - " in row or row.split()[1] == "-" for row in rows) >= len(NON_FINITE)
