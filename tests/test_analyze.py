"""`audiomnist analyze`: exact numbers and flags on a small, deliberately messy tree; the HTML in real Chromium;
the facts of the real FSDD recordings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomnist import cli
from audiomnist.analyze import analyze

SHARED = Path(__file__).resolve().parents[2] / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"
CHROMIUM = Path("/usr/bin/chromium")

META = {
    "01": {"gender": "male", "age": "30", "accent": "German", "native speaker": "yes", "recordingroom": "Kino"},
    "02": {"gender": "female", "age": "1234", "accent": "Spanish", "native speaker": "no", "recordingroom": "VR-Room"},
    "03": {"gender": "male", "age": "25", "accent": "German", "native speaker": "yes", "recordingroom": "Kino"},
}


def _word(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A Hann-shaped tone with a faint noise floor: a stand-in for one spoken word."""
    t = np.arange(int(sr * seconds)) / sr
    noise = np.random.default_rng(seed).normal(0, 1e-4, len(t))
    return (amp * np.hanning(len(t)) * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _silence(sr: int, seconds: float) -> np.ndarray:
    return np.zeros(int(sr * seconds), np.float32)


def _clips() -> dict[str, tuple[np.ndarray, int, str]]:
    """relpath -> (samples, rate, subtype) of every audio file of the tree."""
    word = _word(16000, 0.5)
    stereo = np.stack([_word(44100, 0.6, 300), _word(44100, 0.6, 500, seed=1)], axis=1)
    return {
        "01/0_01_0.wav": (word, 16000, "PCM_16"),
        "01/0_01_1.wav": (word, 16000, "PCM_16"),  # the same samples again
        "01/1_01_0.wav": (_word(8000, 0.4, 350), 8000, "PCM_16"),
        "01/2_01_0.wav": (stereo, 44100, "PCM_24"),
        "01/3_02_1.wav": (_word(16000, 0.45, 600), 16000, "PCM_16"),  # speaker 02 in folder 01
        "02/0_02_0.wav": (np.clip(4 * _word(16000, 0.5, 250), -1, 1), 16000, "PCM_16"),
        "02/1_02_0.wav": (np.random.default_rng(2).normal(0, 1e-4, 8000).astype(np.float32), 16000, "PCM_16"),
        "02/2_02_0.wav": (np.concatenate([_silence(8000, 0.6), _word(8000, 0.5, 330)]), 8000, "PCM_16"),
        "02/3_02_0.wav": (_word(16000, 0.5, 420) + 0.05, 16000, "PCM_16"),
        "03/0_03_0.wav": (_word(16000, 1.2, 380), 16000, "PCM_16"),
        "03/1_03_0.wav": (np.concatenate([_word(16000, 0.4, 520), _silence(16000, 0.7)]), 16000, "PCM_16"),
    }


def make_tree(root: Path) -> Path:
    """Unbalanced digits (4/3/2/2), 8/16/44.1 kHz, one stereo 24-bit file, a text file named .wav, a file whose
    name holds no digit, and AudioMNIST metadata with an impossible age. Too messy for layout detection."""
    for rel, (x, sr, subtype) in _clips().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, x, sr, subtype=subtype)
    (root / "02" / "4_02_0.wav").write_text("this is not audio\n")
    shutil.copy(root / "03" / "0_03_0.wav", root / "03" / "hello.wav")
    (root / "audioMNIST_meta.txt").write_text(json.dumps(META))
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("analyze")
    root = make_tree(tmp / "data")
    out = tmp / "report"
    assert cli.main(["analyze", str(root), "--layout", "audiomnist", "--out", str(out), "--no-progress"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def _files(summary: dict, flag: str) -> list[str]:
    return [f["relpath"] for f in summary["quality"]["files"][flag]]


def test_counts_and_balance(report):
    _, s = report
    assert (s["layout"], s["files"], s["decoded"], s["unreadable"]) == ("audiomnist", 11, 11, 1)
    assert s["per_digit"] == {"0": 4, "1": 3, "2": 2, "3": 2}
    assert s["per_speaker"] == {"01": 4, "02": 5, "03": 2}
    assert s["digit_by_speaker"] == {
        "01": {"0": 2, "1": 1, "2": 1, "3": 0},
        "02": {"0": 1, "1": 1, "2": 1, "3": 2},
        "03": {"0": 1, "1": 1, "2": 0, "3": 0},
    }
    b = s["balance"]
    assert b["balanced"] is False
    assert (b["digits"]["min"], b["digits"]["max"], b["digits"]["ratio"]) == (2, 4, 2.0)
    assert (b["digits"]["smallest"], b["digits"]["largest"]) == (["2", "3"], ["0"])
    assert b["speakers"]["ratio"] == 2.5 and b["missing_digit_speaker_pairs"] == 3


def test_census_and_lengths(report):
    _, s = report
    assert s["census"] == {
        "sample_rates": {"8000": 2, "16000": 8, "44100": 1},
        "channels": {"1": 10, "2": 1},
        "formats": {"WAV": 11},
        "subtypes": {"PCM_16": 10, "PCM_24": 1},
    }
    L = s["lengths"]
    assert (L["window_ms"], L["min"], L["max"]) == (1000, 0.4, 1.2)
    assert (L["longer_than_window"], L["longer_than_window_share"]) == (3, pytest.approx(3 / 11))
    assert L["per_digit"]["1"] == {"count": 3, "min": 0.4, "mean": 0.6667, "median": 0.5, "max": 1.1,
                                   "longer_than_window": 0.3333}  # fmt: skip
    assert [L["per_digit"][d]["count"] for d in "0123"] == [4, 3, 2, 2]


def test_speaker_metadata(report):
    _, s = report
    m = s["speaker_metadata"]
    assert m["gender"] == {"male": 2, "female": 1}
    assert m["accent"] == {"german": 2, "spanish": 1}
    assert m["room"] == {"kino": 2, "vr-room": 1}
    assert m["native_speaker"] == {"yes": 2, "no": 1}
    assert m["age"] == {"known": 2, "unknown": 1, "impossible": 1, "impossible_values": {"02": "1234"},
                        "min": 25.0, "mean": 27.5, "max": 30.0, "values": [25.0, 30.0]}  # fmt: skip


def test_quality_flags_name_the_files(report):
    out, s = report
    q = s["quality"]
    assert _files(s, "unreadable") == ["02/4_02_0.wav"]
    assert "unreadable as audio" in q["files"]["unreadable"][0]["detail"]
    assert _files(s, "name") == ["01/3_02_1.wav", "03/hello.wav"]
    assert _files(s, "duplicate") == ["01/0_01_0.wav", "01/0_01_1.wav"]
    assert q["files"]["duplicate"][0]["detail"] == "same samples as 01/0_01_1.wav"
    assert _files(s, "clipping") == ["02/0_02_0.wav"]
    assert _files(s, "near_silent") == ["02/1_02_0.wav"]
    assert _files(s, "dc_offset") == ["02/3_02_0.wav"]
    assert _files(s, "leading_silence") == ["02/2_02_0.wav"]
    assert _files(s, "trailing_silence") == ["03/1_03_0.wav"]
    assert q["counts"] == {"unreadable": 1, "name": 2, "duplicate": 2, "clipping": 1, "near_silent": 1,
                           "dc_offset": 1, "leading_silence": 1, "trailing_silence": 1}  # fmt: skip
    flags = (out / "flags.csv").read_text()
    assert "02/4_02_0.wav" in flags and "03/hello.wav" in flags


def test_figures_and_files_written(report):
    out, s = report
    assert sorted(s["examples"]) == ["0", "1", "2", "3"]
    assert s["examples"]["1"] == "01/1_01_0.wav"  # the median-length 02/1_02_0.wav is near-silent
    assert set(s["figures"]) >= {
        "digits",
        "speakers",
        "heatmap",
        "census",
        "length_hist",
        "length_digit",
        "meta_gender",
        "meta_age",
        "meta_accent",
        "meta_room",
        "quality",
        "examples",
    }
    for name in s["figures"].values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    html = (out / "report.html").read_text()
    assert html.count("<img ") == len(s["figures"]) and 'src="data:image/png;base64,' in html
    assert "02/4_02_0.wav" in html and "1234" in html


def test_second_run_uses_the_same_cache(report):
    out, s = report
    again = analyze([s["root"]], layout="audiomnist", progress=False, examples=False)
    assert str(again.cache_dir) == s["analysis_cache"]
    summary = again.summary()
    assert summary["quality"] == s["quality"] and summary["lengths"] == s["lengths"]


def test_report_renders_in_chromium(report):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: the HTML check needs a system Chromium")
    out, s = report
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto((out / "report.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        finally:
            browser.close()
    assert len(images) == len(s["figures"])
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []
    assert problems == []


def test_fsdd_facts():
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD} (the ../shared folder is absent)")
    s = analyze([FSDD], progress=False, examples=False).summary()
    assert (s["layout"], s["files"], s["decoded"], s["unreadable"], s["speakers"]) == ("fsdd", 3000, 3000, 0, 6)
    assert s["per_digit"] == {str(d): 300 for d in range(10)} and s["balance"]["balanced"] is True
    assert set(s["per_speaker"].values()) == {500}
    assert s["census"]["sample_rates"] == {"8000": 3000} and s["census"]["channels"] == {"1": 3000}
    assert (round(s["lengths"]["min"], 2), round(s["lengths"]["max"], 2)) == (0.14, 2.28)
    assert s["speaker_metadata"]["gender"] == {"male": 6}
    counts = s["quality"]["counts"]
    assert counts["unreadable"] == counts["duplicate"] == counts["clipping"] == counts["near_silent"] == 0
    assert (counts["leading_silence"], counts["trailing_silence"]) == (3, 48)
    assert "7_george_29.wav" in [f["relpath"] for f in s["quality"]["files"]["leading_silence"]]
