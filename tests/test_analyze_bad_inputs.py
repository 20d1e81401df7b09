"""Reliability of `analyze`: each bad file of the bad corpus flagged by name, every good one measured."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from audiomnist import cli

from conftest import BROKEN, GOOD, UNLABELLED


def test_analyze_flags_each_bad_file_and_measures_every_good_one(corpus, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["analyze", str(corpus), "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.html").is_file()
    flags = pd.read_csv(out / "flags.csv", keep_default_na=False)
    unreadable = flags[flags["flag"] == "unreadable"]
    names = [Path(p).name for p in unreadable["path"]]
    assert sorted(names) == sorted(BROKEN), unreadable
    for name, word in BROKEN.items():
        (detail,) = unreadable.loc[[Path(p).name == name for p in unreadable["path"]], "detail"]
        assert word in detail.lower(), (name, detail)
    name_flags = [Path(p).name for p in flags.loc[flags["flag"] == "name", "path"]]
    assert UNLABELLED in name_flags and "4_01_\\xff\\xfe.wav" in name_flags
    per_file = pd.read_csv(out / "per_file.csv").set_index("relpath")
    assert per_file.loc[GOOD, "peak"].notna().all() and per_file.loc[GOOD, "rms"].notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decoded"] == len(GOOD)
