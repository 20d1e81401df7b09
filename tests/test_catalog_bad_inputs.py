"""Reliability of `data scan`: every bad file of the bad corpus (conftest.py) skipped with one reason naming it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from audiomnist import cli
from audiomnist.catalog import scan

from conftest import GOOD, UNLABELLED, mentioning


def test_scan_skips_each_bad_file_with_one_reason(corpus):
    catalog = scan(corpus, progress=False)
    rel = catalog.table["relpath"].tolist()
    assert len(rel) == len(set(rel)) and not any("loop" in r for r in rel), "the symlink loop was followed"
    # A header scan cannot see NaN samples: those two are catalogued and rejected at decoding.
    assert sorted(rel) == sorted(GOOD + ["01/0_01_59.wav", "01/1_01_60.wav"])
    skipped = dict(zip(catalog.skipped["path"], catalog.skipped["reason"]))
    assert len(skipped) == len(catalog.skipped) == 5
    reasons = {Path(p).name: r for p, r in skipped.items()}
    assert "data" in reasons["1_01_50.wav"]
    assert "empty" in reasons["2_01_51.wav"]
    assert "unreadable" in reasons["3_01_52.wav"]
    assert "label" in reasons[UNLABELLED]
    assert "UTF-8" in reasons["4_01_\\xff\\xfe.wav"]  # shown printable, never as raw surrogates
    t = catalog.table.set_index("relpath")
    assert t.at["01/8_01_57.wav", "sample_rate"] == 96000 and t.at["01/7_01_56.wav", "channels"] == 2
    assert t.at["01/4_01_53.wav", "subtype"] == "PCM_U8" and t.at["01/5_01_54.wav", "subtype"] == "PCM_24"
    assert t.at["01/3_01_62.wav", "duration"] == pytest.approx(600.0)


def test_scan_cli_names_each_skipped_file(corpus, tmp_path, capsys):
    assert cli.main(["data", "scan", str(corpus), "--out", str(tmp_path / "cat"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in ("1_01_50.wav", "2_01_51.wav", "3_01_52.wav", UNLABELLED, "4_01_\\xff\\xfe.wav"):
        assert len(mentioning(out.splitlines(), name)) == 1, name
    saved = pd.read_csv(tmp_path / "cat" / "skipped.csv", dtype=str, keep_default_na=False)
    assert len(saved) == 5
