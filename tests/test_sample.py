"""The packaged synthetic sample: layout, audio format, metadata, size; and its generator on a tiny run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE = Path(str(files("audiomnist") / "sample"))
MAKE_SAMPLE = Path(__file__).resolve().parents[1] / "tools" / "make_sample.py"
SPEAKERS = [f"{s:02d}" for s in range(1, 17)]
META_KEYS = {"accent", "age", "gender", "native speaker", "origin", "recordingdate", "recordingroom"}


def expected_names(speakers: list[str], takes: int) -> set[str]:
    return {f"{s}/{d}_{s}_{t}.flac" for s in speakers for d in range(10) for t in range(takes)}


def flac_names(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.flac")}


def test_sample_layout_is_16_speakers_x_10_digits_x_4_takes():
    assert SAMPLE.is_dir(), f"packaged sample missing at {SAMPLE}"
    assert flac_names(SAMPLE) == expected_names(SPEAKERS, 4)
    assert sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()) == SPEAKERS


def test_sample_audio_is_16k_mono_flac_and_audible():
    for path in sorted(SAMPLE.rglob("*.flac")):
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 1), path
        assert 0.3 <= info.duration <= 1.0, (path, info.duration)
        x, _ = sf.read(path, dtype="int16")
        peak = int(np.abs(x.astype(np.int32)).max())
        assert 1000 < peak < 32767, (path, peak)


def test_sample_meta_is_json_with_a_gender_per_speaker():
    meta = json.loads((SAMPLE / "audioMNIST_meta.txt").read_text())
    assert sorted(meta) == SPEAKERS
    for entry in meta.values():
        assert set(entry) == META_KEYS
        assert entry["gender"] in {"male", "female"}
    assert {e["gender"] for e in meta.values()} == {"male", "female"}


def test_sample_has_readme_and_is_small():
    assert "CC0" in (SAMPLE / "README.md").read_text()
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 6_000_000, f"sample is {total / 1e6:.1f} MB"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (CI installs it)")
def test_make_sample_tiny_run_is_complete_and_deterministic(tmp_path):
    if not MAKE_SAMPLE.exists():
        pytest.skip(f"{MAKE_SAMPLE} not found (not a source checkout)")
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        cmd = [sys.executable, str(MAKE_SAMPLE), "--out", str(out), "--speakers", "2", "--takes", "1", "--no-progress"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert flac_names(outs[0]) == expected_names(["01", "02"], 1)
    meta = json.loads((outs[0] / "audioMNIST_meta.txt").read_text())
    assert sorted(meta) == ["01", "02"] and {e["gender"] for e in meta.values()} == {"male", "female"}
    for name in sorted(flac_names(outs[0])):
        a, sr = sf.read(outs[0] / name, dtype="int16")
        b, _ = sf.read(outs[1] / name, dtype="int16")
        assert sr == 16000 and np.array_equal(a, b), name
