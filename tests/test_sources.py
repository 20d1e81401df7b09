import json
import math
import shutil

import pytest

from audiomnist import sources
from audiomnist.sources import Label, detect_layout, detect_layout_from_names, load_metadata, parse_label

QUIRKY_META = {
    "01": {"accent": "german", "age": 30, "gender": "male", "native speaker": "no", "recordingroom": "Kino"},
    "02": {"accent": "German", "age": "25", "gender": "Male", "native speaker": "no", "recordingroom": "VR-Room"},
    "03": {"accent": "Egyptian_American?", "age": "1234", "gender": "female", "native speaker": "yes",
           "recordingroom": "vr-romm"},
    "4": {"accent": " Brasilian ", "age": "2", "gender": "FEMALE", "recordingroom": "vr-room"},
    "05": {"accent": "Tamil", "age": "abc", "gender": "female", "recordingroom": "library"},
}  # fmt: skip


def test_inline_meta_quirks(tmp_path):
    (tmp_path / "audioMNIST_meta.txt").write_text(json.dumps(QUIRKY_META))
    meta = load_metadata(tmp_path, "audiomnist")
    s = meta.speakers
    assert s["01"].age == 30 and s["02"].age == 25
    assert math.isnan(s["03"].age) and math.isnan(s["04"].age) and math.isnan(s["05"].age)
    assert {s[k].room for k in s} == {"kino", "vr-room", "library"}
    assert s["02"].gender == "male" and s["04"].gender == "female"
    assert s["03"].accent == "egyptian/american" and s["04"].accent == "brazilian" and s["01"].accent == "german"
    assert s["03"].native_speaker == "yes" and s["04"].native_speaker == "unknown"
    assert any("03" in n and "1234" in n for n in meta.notes)
    assert meta.get("99") == sources.SpeakerMeta()


def test_real_meta_file(tmp_path, audiomnist_meta):
    shutil.copy(audiomnist_meta, tmp_path / audiomnist_meta.name)
    meta = load_metadata(tmp_path, "audiomnist")
    s = meta.speakers
    assert len(s) == 60
    assert {m.room for m in s.values()} == {"kino", "ruheraum", "vr-room", "library"}
    assert {m.gender for m in s.values()} == {"male", "female"}
    assert sum(m.gender == "female" for m in s.values()) == 12
    assert math.isnan(s["45"].age) and s["44"].age == 61 and s["01"].age == 30
    assert all(m.accent == m.accent.lower().strip() for m in s.values())
    assert {s["01"].accent, s["02"].accent} == {"german"}
    assert {m.native_speaker for m in s.values()} == {"yes", "no"}


def test_meta_found_beside_data_folder(tmp_path):
    (tmp_path / "data" / "01").mkdir(parents=True)
    (tmp_path / "audioMNIST_meta.txt").write_text(json.dumps(QUIRKY_META))
    assert load_metadata(tmp_path / "data", "audiomnist").speakers["01"].room == "kino"
    assert load_metadata(tmp_path, "audiomnist").speakers["01"].room == "kino"


def test_missing_and_malformed_meta(tmp_path):
    assert load_metadata(tmp_path, "audiomnist").speakers == {}
    bad = tmp_path / "audioMNIST_meta.txt"
    bad.write_text('{"01": {"age": 3')
    with pytest.warns(UserWarning, match="audioMNIST_meta.txt"):
        meta = load_metadata(tmp_path, "audiomnist")
    assert meta.speakers == {}


def test_fsdd_speakers_json(tmp_path):
    (tmp_path / "recordings").mkdir()
    (tmp_path / "speakers.json").write_text(json.dumps({"george": {"gender": "male", "accent": "GRC/Greek"}}))
    meta = load_metadata(tmp_path / "recordings", "fsdd")
    assert meta.get("george").gender == "male" and meta.get("george").accent == "grc/greek"
    assert meta.get("nobody").gender == "unknown"


def test_parse_label_audiomnist_and_fsdd():
    assert parse_label("07/3_07_42.wav", "audiomnist") == Label(3, "07", 42)
    assert parse_label("07/notes.wav", "audiomnist") is None
    assert parse_label("0_george_12.wav", "fsdd") == Label(0, "george", 12)
    assert parse_label("george.wav", "fsdd") is None


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("alice/7_take.wav", Label(7, "alice", -1)),
        ("alice/7_3.wav", Label(7, "alice", 3)),
        ("7.wav", Label(7, "unknown", -1)),
        ("bob/zero.wav", Label(0, "bob", -1)),
        ("bob/zero_3.wav", Label(0, "bob", 3)),
        ("bob/Seven-take2.WAV", Label(7, "bob", 2)),
        ("bob/NINE.flac", Label(9, "bob", -1)),
        ("carol/seven/001.wav", Label(7, "carol", -1)),
        ("seven/carol/001.wav", Label(7, "carol", -1)),
        ("4/clip.ogg", Label(4, "unknown", -1)),
        ("one2.wav", Label(1, "unknown", 2)),
        ("dave/session1/five.wav", Label(5, "session1", -1)),
        ("seven_3.wav", Label(7, "unknown", 3)),
        ("erin/seven-take2.wav", Label(7, "erin", 2)),
        ("3/one_sample.wav", Label(3, "unknown", -1)),  # the folder labels it; the name does not
        ("zero/six_ch.flac", Label(0, "unknown", -1)),
    ],
)
def test_folder_labels(rel, expected):
    assert parse_label(rel, "folder") == expected


UNLABELLED = [
    "alice/seventeen.wav",
    "alice/12.wav",
    "alice/hello.wav",
    "noise.wav",
    "oneself.wav",
    "eleven.wav",
    "one_sample.wav",
    "six_ch.wav",
    "alice/two people talking.wav",
    "Nine-Inch.wav",
    "three_d_3.wav",
]


@pytest.mark.parametrize("rel", UNLABELLED)
def test_folder_unlabelled(rel):
    assert parse_label(rel, "folder") is None


def test_detect_layout_from_names():
    am = [f"{s:02d}/{d}_{s:02d}_{r}.wav" for s in (1, 2) for d in range(10) for r in range(3)]
    assert detect_layout_from_names(am) == "audiomnist"
    assert detect_layout_from_names([f"{d}_jackson_{r}.wav" for d in range(10) for r in range(5)]) == "fsdd"
    assert detect_layout_from_names(["alice/seven.wav", "alice/one.wav", "bob/3_x.wav"]) == "folder"
    assert detect_layout_from_names([]) == "folder"
    # AudioMNIST-style names whose folder does not match the speaker are not AudioMNIST
    assert detect_layout_from_names([f"x/{d}_01_0.wav" for d in range(10)]) == "fsdd"


def test_detect_layout_on_disk(tmp_path):
    for d in range(3):
        (tmp_path / "03").mkdir(exist_ok=True)
        (tmp_path / "03" / f"{d}_03_0.wav").touch()
    (tmp_path / "readme.txt").touch()
    assert detect_layout(tmp_path) == "audiomnist"
