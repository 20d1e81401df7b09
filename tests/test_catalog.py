import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiomnist import catalog as cat
from audiomnist import cli
from audiomnist.catalog import COLUMNS, combine, index_dir, load_catalog, load_or_scan, scan

from conftest import fake_encoded


def tone(path: Path, sr: int = 8000, n: int = 400, channels: int = 1, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.tile(x[:, None], (1, channels)) if channels > 1 else x, sr, **kw)
    return path


def audiomnist_tree(root: Path, speakers=("01", "45", "52", "61"), digits=(0, 7), reps=(0, 1)) -> Path:
    for s in speakers:
        for d in digits:
            for r in reps:
                tone(root / s / f"{d}_{s}_{r}.wav", sr=48000, n=480)
    return root


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOMNIST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_audiomnist_layout_with_real_meta(tmp_path, audiomnist_meta):
    root = audiomnist_tree(tmp_path / "AudioMNIST" / "data")
    shutil.copy(audiomnist_meta, root / audiomnist_meta.name)
    c = scan(root, progress=False)
    t = c.table
    assert c.layout == "audiomnist" and list(t.columns) == list(COLUMNS)
    assert len(t) == 16 and t["relpath"].is_monotonic_increasing and c.skipped.empty
    by = t.drop_duplicates("speaker").set_index("speaker")
    assert by.loc["01", "gender"] == "male" and by.loc["52", "gender"] == "female"
    assert by.loc["01", "room"] == "kino" and by.loc["52", "room"] == "vr-room"
    assert by.loc["52", "accent"] == "french" and by.loc["01", "age"] == 30
    assert math.isnan(by.loc["45", "age"])
    assert by.loc["61", "gender"] == "unknown" and math.isnan(by.loc["61", "age"])
    assert any("61" in n for n in c.notes) and any("1234" in n for n in c.notes)
    row = t.iloc[0]
    assert row["path"] == str(root / "01" / "0_01_0.wav") and row["digit"] == 0 and row["repetition"] == 0
    assert row["sample_rate"] == 48000 and row["frames"] == 480 and row["duration"] == pytest.approx(0.01)
    assert row["format"] == "WAV" and row["subtype"] == "PCM_16" and row["channels"] == 1


def test_audiomnist_meta_one_level_up(tmp_path):
    root = audiomnist_tree(tmp_path / "data", speakers=("02",), digits=(1,), reps=(0,))
    (tmp_path / "audioMNIST_meta.txt").write_text(json.dumps({"02": {"gender": "Female", "recordingroom": "VR-room"}}))
    t = scan(root, progress=False).table
    assert t.loc[0, "gender"] == "female" and t.loc[0, "room"] == "vr-room"


def test_real_fsdd_scan(fsdd_dir):
    c = scan(fsdd_dir, progress=False)
    s = c.summary()
    assert c.layout == "fsdd"
    assert s["files"] == 3000 and s["speakers"] == 6 and len(s["digits"]) == 10
    assert s["sample_rates"] == {8000: 3000}
    assert s["speakers_by_gender"] == {"male": 6}


def test_bad_files_are_skipped_with_reasons(tmp_path, no_ffmpeg):
    root = tmp_path / "data"
    good = [tone(root / "alice" / f"{d}_0.wav") for d in (1, 2)]
    tone(root / "bob" / "three.flac", format="FLAC")
    tone(root / "bob" / "four.ogg", format="OGG", subtype="VORBIS", n=4000)
    (root / "alice" / "5_empty.wav").write_bytes(b"")
    (root / "alice" / "6_text.wav").write_text("this is not audio\n" * 10)
    header = tone(tmp_path / "full.wav").read_bytes()
    (root / "alice" / "7_trunc.wav").write_bytes(header[:20])
    tone(root / "alice" / "hello.wav")
    (root / "alice" / "8_x.mp3").write_bytes(b"ID3")
    (root / "notes.txt").write_text("ignored")
    (root / ".hidden.wav").write_text("ignored")
    sf.write(root / "alice" / "9_noframes.wav", np.zeros((0,)), 8000)

    c = scan(root, layout="folder", progress=False)
    assert sorted(c.table["relpath"]) == ["alice/1_0.wav", "alice/2_0.wav", "bob/four.ogg", "bob/three.flac"]
    assert set(c.table["format"]) == {"WAV", "FLAC", "OGG"}
    assert c.table.loc[c.table.relpath == "bob/four.ogg", "frames"].item() == 4000
    reasons = {Path(p).name: r for p, r in c.skipped.itertuples(index=False)}
    assert set(reasons) == {"5_empty.wav", "6_text.wav", "7_trunc.wav", "hello.wav", "8_x.mp3", "9_noframes.wav"}
    assert "empty" in reasons["5_empty.wav"]
    assert "unreadable" in reasons["6_text.wav"] and "unreadable" in reasons["7_trunc.wav"]
    assert "no digit label" in reasons["hello.wav"]
    assert "unsupported audio format .mp3; convert to WAV, FLAC or OGG, or install ffmpeg" in reasons["8_x.mp3"]
    assert "no audio frames" in reasons["9_noframes.wav"]
    assert all(str(p) in set(c.table["path"]) for p in good)


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symlinks")
def test_symlink_loop_does_not_hang(tmp_path):
    root = tmp_path / "data"
    tone(root / "alice" / "1_0.wav")
    os.symlink(root, root / "alice" / "loop")
    os.symlink(root / "alice", root / "again")
    os.symlink(tmp_path / "nowhere.wav", root / "alice" / "2_0.wav")
    c = scan(root, layout="folder", progress=False)
    assert list(c.table["relpath"]) == ["alice/1_0.wav"]
    assert "broken symlink" in c.skipped.set_index("path").loc[str(root / "alice" / "2_0.wav"), "reason"]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that stores raw bytes names")
def test_non_utf8_file_name(tmp_path):
    root = tmp_path / "data"
    tone(root / "alice" / "1_0.wav")
    raw = os.path.join(os.fsencode(root / "alice"), b"2_caf\xe9.wav")
    with open(raw, "wb") as f:
        f.write((root / "alice" / "1_0.wav").read_bytes())
    c = scan(root, layout="folder", progress=False)
    assert list(c.table["relpath"]) == ["alice/1_0.wav"]
    ((path, reason),) = c.skipped.itertuples(index=False)
    assert "UTF-8" in reason and "2_caf\\xe9.wav" in path
    c.save(tmp_path / "out")
    assert len(load_catalog(tmp_path / "out").skipped) == 1


def test_fingerprint_tracks_file_changes(tmp_path):
    root = audiomnist_tree(tmp_path / "data", speakers=("01",), digits=(0, 1), reps=(0,))
    f1 = scan(root, progress=False).fingerprint
    assert scan(root, progress=False).fingerprint == f1
    target = root / "01" / "1_01_0.wav"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    f2 = scan(root, progress=False).fingerprint
    assert f2 != f1
    tone(root / "01" / "2_01_0.wav", sr=48000)
    assert scan(root, progress=False).fingerprint not in (f1, f2)
    assert scan(root, layout="folder", progress=False).fingerprint != scan(root, progress=False).fingerprint


def test_save_load_roundtrip(tmp_path):
    root = audiomnist_tree(tmp_path / "data", speakers=("01", "02"), digits=(3,), reps=(0,))
    (root / "audioMNIST_meta.txt").write_text(json.dumps({"01": {"gender": "male", "age": "1234", "accent": "NA"}}))
    (root / "01" / "4_01_0.wav").write_bytes(b"")
    c = scan(root, progress=False)
    out = c.save(tmp_path / "cat")
    assert {p.name for p in out.iterdir()} == {"catalog.csv", "skipped.csv", "catalog.json"}
    back = load_catalog(out)
    pd.testing.assert_frame_equal(back.table, c.table)
    pd.testing.assert_frame_equal(back.skipped.astype(str), c.skipped.astype(str))
    assert back.fingerprint == c.fingerprint and back.layout == "audiomnist" and back.root == c.root
    assert back.table["speaker"].tolist() == ["01", "02"] and back.table["accent"].tolist() == ["na", "unknown"]
    assert back.notes == c.notes


def test_load_or_scan_saves_to_index(tmp_path, home, capsys):
    root = audiomnist_tree(tmp_path / "data", speakers=("01",), digits=(3,), reps=(0,))
    c = load_or_scan(root, progress=False)
    assert index_dir(root).parent == home / "index" and index_dir(root).name.startswith("data-")
    assert load_catalog(index_dir(root)).fingerprint == c.fingerprint
    assert "1 files" in capsys.readouterr().out


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(cat.AudiomnistError, match="no such folder"):
        scan(tmp_path / "nope")


def test_combine_keeps_speakers_distinct(tmp_path):
    tone(tmp_path / "a" / "1_george_0.wav")
    a = scan(tmp_path / "a", progress=False)
    tone(tmp_path / "b" / "2_george_0.wav")
    b = scan(tmp_path / "b", progress=False)
    both = combine([a, b])
    assert sorted(both.table["speaker"]) == ["a/george", "b/george"]
    assert both.table["relpath"].tolist() == ["a/1_george_0.wav", "b/2_george_0.wav"]
    tone(tmp_path / "c" / "3_lucas_0.wav")
    assert set(combine([a, scan(tmp_path / "c", progress=False)]).table["speaker"]) == {"george", "lucas"}


def with_data_command(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "data", ("audiomnist.catalog", "scan, download and describe datasets"))


def test_cli_data_scan_prints_counts(tmp_path, monkeypatch, capsys):
    with_data_command(monkeypatch)
    root = audiomnist_tree(tmp_path / "data", speakers=("01", "02"), digits=(0, 1, 2), reps=(0,))
    (root / "02" / "9_02_0.wav").write_text("junk")
    assert cli.main(["data", "scan", str(root), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 files, 2 speakers, 3 digits" in out and "48000 Hz:6" in out
    assert "skipped 1 files" in out and str(tmp_path / "out" / "skipped.csv") in out
    assert (tmp_path / "out" / "catalog.csv").is_file()
    assert cli.main(["data", "scan", str(tmp_path / "nope")]) == 2


def test_cli_data_sample(tmp_path, monkeypatch, capsys):
    with_data_command(monkeypatch)
    sample = audiomnist_tree(tmp_path / "sample", speakers=("01",), digits=(0, 1), reps=(0,))
    (sample / "README.md").write_text("# Sample\nsynthetic voices\n")
    monkeypatch.setattr(cat, "sample_root", lambda: sample)
    assert cli.main(["data", "sample", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(sample)
    assert cli.main(["data", "sample"]) == 0
    out = capsys.readouterr().out
    assert "synthetic voices" in out and "2 audio files" in out
    monkeypatch.setattr(cat, "sample_root", lambda: tmp_path / "missing")
    assert cli.main(["data", "sample"]) == 2
    assert "missing" in capsys.readouterr().err


def test_parquet_roundtrip(tmp_path):
    pytest.importorskip("pyarrow", reason="--format parquet needs pyarrow (in the dev extra)")
    root = audiomnist_tree(tmp_path / "data", speakers=("01", "02"), digits=(3, 4), reps=(0,))
    (root / "02" / "4_02_0.wav").write_text("not audio")
    c = scan(root, progress=False)
    out = c.save(tmp_path / "cat", format="parquet")
    assert {p.name for p in out.iterdir()} == {"catalog.parquet", "skipped.parquet", "catalog.json"}
    back = load_catalog(out)
    pd.testing.assert_frame_equal(back.table, c.table)
    assert back.fingerprint == c.fingerprint and len(back.skipped) == 1


def test_truncated_wav_is_flagged_naming_the_file(tmp_path, capsys):
    root = tmp_path / "data"
    tone(root / "alice" / "1_0.wav", n=4000)
    data = tone(tmp_path / "full.wav", n=4000).read_bytes()
    (root / "alice" / "2_0.wav").write_bytes(data[: len(data) // 2])  # the header still promises all 4000 frames
    c = scan(root, layout="folder", progress=False)
    (note,) = [n for n in c.notes if "truncated" in n]
    assert note.startswith(str(root / "alice" / "2_0.wav") + ": truncated") and "1_0.wav" not in " ".join(c.notes)
    assert cli.main(["data", "scan", str(root), "--out", str(tmp_path / "cat"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert sum("2_0.wav" in line and "truncated" in line for line in out.splitlines()) == 1


def test_a_wav_named_mp3_is_catalogued_like_predict_takes_it(tmp_path):
    root = tmp_path / "data"
    tone(root / "alice" / "1_0.wav")
    tone(root / "alice" / "2_0.mp3", format="WAV")
    (root / "alice" / "readme.md").write_text("notes")
    c = scan(root, layout="folder", progress=False)
    assert list(c.table["relpath"]) == ["alice/1_0.wav", "alice/2_0.mp3"] and c.skipped.empty
    assert c.table.loc[1, "format"] == "WAV"
    assert "ignored 1 files that are not audio by name (.md 1)" in c.notes


def test_other_formats_are_scanned_through_ffmpeg(fake_ffmpeg, tmp_path):
    root = tmp_path / "data"
    tone(root / "alice" / "1_0.wav")
    (root / "alice" / "2_0.m4a").write_bytes(fake_encoded(np.zeros(500)))
    (root / "alice" / "3_0.m4a").write_bytes(b"junk")
    c = scan(root, layout="folder", progress=False)
    row = c.table[c.table.relpath == "alice/2_0.m4a"].iloc[0]
    assert (row.sample_rate, row.channels, row.frames, row.format, row.subtype) == (8000, 2, 500, "M4A", "FFMPEG")
    reasons = {Path(p).name: r for p, r in c.skipped.itertuples(index=False)}
    assert list(reasons) == ["3_0.m4a"] and "ffmpeg: Invalid data found" in reasons["3_0.m4a"]
