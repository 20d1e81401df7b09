"""Classifier API and `audiomnist predict`, on the shipped default model."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from audiomnist import cli
from audiomnist.audio import bad_samples, load_audio
from audiomnist.catalog import sample_root
from audiomnist.errors import AudioError, AudiomnistError
from audiomnist.infer import (
    PRETRAINED,
    Classifier,
    Prediction,
    audio_problem,
    find_audio,
    label_from_name,
    resolve_model,
)
from audiomnist.sources import path_problem

CLASSES = [str(d) for d in range(10)] + ["none"]  # the shipped model has the none class
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# Single clips gain nothing from intra-op threads, and on a busy machine waiting for them dominates.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load()


def sample_clip(digit: int, rep: int = 0) -> tuple[np.ndarray, int]:
    """A synthetic spoken digit shipped with the package (16 kHz FLAC), of speaker 02: the shipped models have named
    all ten of its first takes with p(none) under 0.1 (speaker 01's "seven" sits near the stored threshold)."""
    x, sr = sf.read(sample_root() / "02" / f"{digit}_02_{rep}.flac", dtype="float32")
    return x, sr


def write_wav(path, digit: int, rate: int = 8000):
    x, sr = sample_clip(digit)
    sf.write(path, soxr.resample(x, sr, rate), rate)
    return path


def assert_same(a: Prediction, b: Prediction, atol: float) -> None:
    assert a.label == b.label
    assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in CLASSES) < atol


def test_default_model_loads(clf):
    assert clf.classes == CLASSES and clf.sample_rate == 8000 and clf.backend == "torch"
    assert resolve_model(None) == resolve_model("default") == PRETRAINED / "default.pt"


def test_prediction_holds_label_probability_and_all_classes(clf):
    p = clf.predict(*sample_clip(3))
    assert p.label in CLASSES and list(p.probabilities) == CLASSES
    assert p.probability == max(p.probabilities.values()) == p.probabilities[p.label]
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.to_dict() == {
        "label": p.label,
        "probability": p.probability,
        "probabilities": p.probabilities,
        "path": None,
        "reason": None,
    }


@pytest.mark.parametrize("digit", [0, 4, 7])
def test_any_input_rate_gives_the_same_answer(clf, digit):
    x, sr = sample_clip(digit)
    at = {rate: clf.predict(soxr.resample(x, sr, rate), rate) for rate in (8000, 16000, 44100)}
    assert_same(at[8000], at[16000], 0.02)
    assert_same(at[8000], at[44100], 0.02)


@pytest.mark.parametrize("digit", [1, 6, 9])
def test_quiet_stretches_around_a_word_do_not_change_its_answer(clf, digit):
    """A second of quiet room before or after the word: the window is centred on the word, as training windows are,
    so the answer is the word's alone (a crop to the loudest stretch used to leave it at the window's edge)."""
    x, sr = sample_clip(digit)
    x = soxr.resample(x, sr, clf.sample_rate)
    rng = np.random.default_rng(digit)

    def said(before: int, after: int) -> Prediction:
        room = rng.normal(0, 1e-3, before + x.size + after).astype(np.float32)
        room[before : before + x.size] += x
        return clf.predict(room, clf.sample_rate)

    alone = said(800, 800)
    for before, after in ((16000, 800), (800, 16000), (12000, 12000)):
        assert_same(said(before, after), alone, 0.05)


def test_stereo_frames_by_channels_is_downmixed(clf, tmp_path):
    x, sr = sample_clip(5)
    mono = clf.predict(x, sr)
    assert_same(clf.predict(np.stack([x, x], axis=1), sr), mono, 1e-6)
    sf.write(tmp_path / "mono.wav", x, sr)
    sf.write(tmp_path / "stereo.wav", np.stack([x, x], axis=1), sr)
    assert_same(clf.predict_file(tmp_path / "stereo.wav"), clf.predict_file(tmp_path / "mono.wav"), 1e-6)


def test_file_array_and_batch_agree(clf, tmp_path):
    paths = [write_wav(tmp_path / f"{d}.wav", d) for d in (1, 2, 8)]
    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    batch = clf.predict_batch(waves, 8000)
    for p, w, b in zip(paths, waves, batch):
        f = clf.predict_file(p)
        assert f.path == str(p)
        assert_same(f, clf.predict(w, 8000), 1e-6)
        assert_same(b, f, 1e-5)


def test_empty_waveform_is_refused_and_nan_gets_no_digit(clf):
    with pytest.raises(AudiomnistError, match="empty"):
        clf.predict(np.zeros(0, np.float32), 8000)
    p = clf.predict(np.array([0.1, np.nan, 0.2] * 800, np.float32), 8000)
    assert p.label is None and p.reason == "bad samples" and p.probabilities == {}


def test_predict_files_reports_a_corrupt_file_and_predicts_the_rest(clf, tmp_path):
    good = [write_wav(tmp_path / f"{d}_x.wav", d) for d in (0, 6, 9)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    paths = [good[0], corrupt, good[1], empty, good[2]]
    preds, errors = clf.predict_files(paths, batch_size=2)
    assert [p.path for p in preds] == [str(p) for p in good]
    assert [type(e) for e in errors] == [AudioError, AudioError]
    assert [e.path for e in errors] == [str(corrupt), str(empty)]
    assert str(corrupt) in str(errors[0]) and "empty file" in str(errors[1])
    for p, path in zip(preds, good):
        assert_same(p, clf.predict_file(path), 1e-5)


def test_real_fsdd_digits_are_recognised(clf, fsdd_dir):
    for speaker in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler"):
        paths = [fsdd_dir / f"{d}_{speaker}_0.wav" for d in range(10)]
        preds, errors = clf.predict_files(paths)
        assert not errors
        right = sum(p.label == str(d) for d, p in zip(range(10), preds))
        assert right >= 9, f"{speaker}: {right}/10 digits right"


@pytest.mark.parametrize(
    "name, label",
    [
        ("7_theo_3.wav", "7"),
        ("seven.wav", "7"),
        ("Zero-2.flac", "0"),
        ("nine_take1.ogg", "9"),
        ("clip.wav", None),
        ("sevenish.wav", None),
    ],
)
def test_label_from_name(name, label):
    assert label_from_name(f"/some/3/{name}") == label


def test_find_audio_walks_folders_and_keeps_given_files(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for rel in ("d/b.wav", "d/sub/a.flac", "d/notes.txt", "x.wav"):
        (tmp_path / rel).write_bytes(b"")
    got = find_audio([str(tmp_path / "d"), str(tmp_path / "x.wav")])
    assert got == [tmp_path / "d" / "b.wav", tmp_path / "d" / "sub" / "a.flac", tmp_path / "x.wav"]
    with pytest.raises(AudiomnistError, match="no such file or folder"):
        find_audio([str(tmp_path / "missing")])


def test_resolve_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(AudiomnistError, match="not a run folder"):
        resolve_model(run)
    shutil.copy(PRETRAINED / "default.pt", run / "best.pt")
    assert resolve_model(run) == run / "best.pt"
    assert resolve_model(run / "best.pt") == run / "best.pt"
    with pytest.raises(AudiomnistError, match=r"no-such-model: no such run folder.*shipped: default"):
        resolve_model("no-such-model")


def test_loading_a_broken_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AudiomnistError, match="bad.pt"):
        Classifier.load(bad)
    with pytest.raises(AudiomnistError, match="unknown backend"):
        Classifier.load(backend="tensorrt")


@pytest.fixture
def named_clips(tmp_path):
    """Files whose names carry their label ('seven.wav', '3_x.wav') and one that does not."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for d in (0, 3, 7):
        write_wav(folder / f"{WORDS[d]}.wav", d)
        write_wav(folder / f"{d}_x.wav", d)
    write_wav(folder / "mystery.wav", 5)
    return folder


def run_predict(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["predict", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_prints_accuracy_and_confusion_for_labelled_names(named_clips, capsys):
    code, out, err = run_predict(capsys, named_clips)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["file", "pred", "prob", "true"]
    assert sum(str(named_clips) in line for line in lines) == 7
    assert any(line.startswith("accuracy ") and line.endswith(" on 6 files labelled by their names") for line in lines)
    header = lines.index("confusion (rows true, columns predicted):")
    assert lines[header + 1].split() == CLASSES
    rows = [list(map(int, line.split()[1:])) for line in lines[header + 2 : header + 12]]
    assert [sum(r) for r in rows] == [2, 0, 0, 2, 0, 0, 0, 2, 0, 0]
    assert "7 files in" in lines[-1]


def test_cli_refused_digits_keep_their_probabilities_and_fill_the_none_column(named_clips, capsys):
    """A file the network heard but answered "not a digit" still has its class probabilities in the CSV, and a
    labelled one counts in the confusion's `none` column (a threshold this low refuses every file)."""
    code, out, _ = run_predict(capsys, named_clips, "--format", "csv", "--none-threshold", "1e-9")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 7
    for r in rows:
        assert r["prediction"] == "-" and r["reason"] == "not a digit"
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
    code, out, _ = run_predict(capsys, named_clips, "--none-threshold", "1e-9")
    lines = out.splitlines()
    assert "accuracy 0.0000 on 6 files labelled by their names (6 gave no digit, counted as wrong)" in lines
    header = lines.index("confusion (rows true, columns predicted):")
    rows = [list(map(int, line.split()[1:])) for line in lines[header + 2 : header + 12]]
    assert [r[-1] for r in rows] == [2, 0, 0, 2, 0, 0, 0, 2, 0, 0] and sum(map(sum, rows)) == 6


def test_cli_table_without_labels_has_no_accuracy(tmp_path, capsys):
    write_wav(tmp_path / "clip.wav", 2)
    code, out, _ = run_predict(capsys, tmp_path / "clip.wav")
    assert code == 0 and not any(line.startswith(("accuracy", "confusion")) for line in out.splitlines())


def test_cli_json(named_clips, capsys, clf):
    code, out, _ = run_predict(capsys, named_clips, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 7
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert (
        by_name["seven.wav"]["true"] == "7"
        and by_name["3_x.wav"]["true"] == "3"
        and by_name["mystery.wav"]["true"] is None
    )
    seven = clf.predict_file(named_clips / "seven.wav")
    assert by_name["seven.wav"]["label"] == seven.label
    assert by_name["seven.wav"]["probability"] == pytest.approx(seven.probability, abs=1e-6)
    assert list(by_name["seven.wav"]["probabilities"]) == CLASSES


def test_cli_csv(named_clips, capsys):
    code, out, _ = run_predict(capsys, named_clips, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 7
    assert list(rows[0]) == ["path", "prediction", "probability", "true", *(f"p_{c}" for c in CLASSES), "reason"]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["zero.wav"]["true"] == "0" and by_name["mystery.wav"]["true"] == ""
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
        assert float(r["probability"]) == pytest.approx(float(r[f"p_{r['prediction']}"]))


def test_cli_skips_a_corrupt_file_and_fails_only_when_nothing_was_read(named_clips, tmp_path, capsys):
    bad = named_clips / "broken.wav"
    bad.write_bytes(b"garbage")
    code, out, err = run_predict(capsys, named_clips, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 7
    assert f"skipped: {bad}: not a readable audio file" in err
    code, _, err = run_predict(capsys, bad)
    assert code == 1 and str(bad) in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.wav"], "no such file or folder"),
        (["."], "no audio files"),
        ([".", "--model", "nope"], "nope: no such run folder"),
    ],
)
def test_cli_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_predict(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and message in err


def test_cli_processes_every_readable_input_and_names_each_unreadable_one(named_clips, tmp_path, capsys):
    """A missing file or a symlink loop among the arguments must not lose the others; the command fails at the end."""
    loop = tmp_path / "loop.wav"
    os.symlink(loop, loop)  # points at itself: ELOOP
    dangling = tmp_path / "dangling.wav"
    os.symlink(tmp_path / "gone.wav", dangling)
    good = named_clips / "seven.wav"
    code, out, err = run_predict(capsys, tmp_path / "missing.wav", loop, good, dangling, "--format", "json")
    assert code == 1
    assert [r["path"] for r in json.loads(out)] == [str(good)]
    lines = err.splitlines()
    for path, cause in (
        (tmp_path / "missing.wav", "no such file or folder"),
        (loop, "symlink loop"),
        (dangling, "broken symlink"),
    ):
        (line,) = [line for line in lines if str(path) in line]
        assert cause in line, line
    code, _, err = run_predict(capsys, loop)  # nothing readable at all: one error line with the real cause
    assert code == 2 and err.startswith("error: ") and "symlink loop" in err and err.count("\n") == 1


def test_unreadable_causes_are_the_operating_systems(tmp_path, monkeypatch):
    """Permission denied (not libsndfile's 'System error'); as root no file is unreadable, so the OS call is faked."""
    f = tmp_path / "3_x.wav"
    write_wav(f, 3)
    real_open = os.open

    def denied(path, *a, **k):
        if os.fspath(path) == str(f):
            raise PermissionError(errno.EACCES, "Permission denied", str(f))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    assert path_problem(f) == "permission denied"
    monkeypatch.setattr(sf, "SoundFile", lambda *a, **k: (_ for _ in ()).throw(sf.LibsndfileError(2, "System error")))
    with pytest.raises(AudioError, match="permission denied"):
        load_audio(f, 8000)


DEGENERATE = {  # name -> (samples, sample rate, subtype, the reason it gets no digit)
    "single_sample.wav": (np.array([0.5], np.float32), 8000, "PCM_16", "too short"),
    "click_12ms.wav": (np.sin(np.arange(96) * 0.7).astype(np.float32) * 0.5, 8000, "PCM_16", "too short"),
    "silence.wav": (np.zeros(8000, np.float32), 8000, "PCM_16", "no speech"),
    "hiss.wav": (np.random.default_rng(0).normal(0, 3e-4, 16000).astype(np.float32), 16000, "PCM_16", "no speech"),
    "loud_white_noise.wav": (
        np.random.default_rng(1).normal(0, 0.2, 8000).astype(np.float32),
        8000,
        "FLOAT",
        "no speech",
    ),
    "huge.wav": (np.full(8000, 1e30, np.float32), 8000, "FLOAT", "bad samples"),
    "nan.wav": (np.full(8000, np.nan, np.float32), 8000, "FLOAT", "bad samples"),
}


@pytest.fixture
def degenerate(tmp_path):
    folder = tmp_path / "degenerate"
    folder.mkdir()
    for name, (x, sr, subtype, _) in DEGENERATE.items():
        sf.write(folder / name, x, sr, subtype=subtype)
    write_wav(folder / "7_real.wav", 7)
    return folder


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_audio_problem_gate(name):
    x, sr, _, reason = DEGENERATE[name]
    assert audio_problem(x, sr) == reason


def test_bad_samples_is_the_gates_first_test():
    for name, (x, _, _, reason) in DEGENERATE.items():
        assert bad_samples(x) == (reason == "bad samples"), name
    assert not bad_samples(np.zeros(0, np.float32)) and bad_samples(np.array([0.1, -np.inf]))


def test_real_speech_passes_the_gate():
    for d in range(10):
        assert audio_problem(*sample_clip(d)) is None


def test_every_fsdd_recording_passes_the_gate(fsdd_dir):
    refused = {}
    for f in sorted(fsdd_dir.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        if (why := audio_problem(x, sr)) is not None:
            refused[f.name] = why
    assert not refused, refused


def test_degenerate_files_get_no_digit_with_the_reason(clf, degenerate):
    preds, errors = clf.predict_files(sorted(degenerate.iterdir()))
    assert not errors
    got = {os.path.basename(p.path): p for p in preds}
    for name, (*_, reason) in DEGENERATE.items():
        assert got[name].label is None and got[name].reason == reason and got[name].probabilities == {}, name
        assert clf.predict_file(degenerate / name).reason == reason
    assert got["7_real.wav"].label == "7" and got["7_real.wav"].reason is None


def test_cli_shows_no_digit_as_null_and_dash(degenerate, capsys):
    code, out, _ = run_predict(capsys, degenerate, "--format", "json")
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(out)}
    assert code == 0 and rows["silence.wav"]["digit"] is None and rows["silence.wav"]["reason"] == "no speech"
    assert rows["7_real.wav"]["digit"] == "7" and rows["7_real.wav"]["reason"] is None
    code, out, _ = run_predict(capsys, degenerate, "--format", "csv")
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(io.StringIO(out))}
    assert by_name["nan.wav"]["prediction"] == "-" and by_name["nan.wav"]["reason"] == "bad samples"
    code, out, _ = run_predict(capsys, degenerate)
    (line,) = [line for line in out.splitlines() if "single_sample.wav" in line]
    assert line.split()[1:] == ["-", "too", "short"]
    # 7_real.wav is the only labelled file; a labelled file without a digit would count as wrong
    assert any(line.startswith("accuracy 1.0000 on 1 files") for line in out.splitlines())


def test_predict_warns_about_a_truncated_wav(tmp_path, capsys):
    full = write_wav(tmp_path / "full.wav", 4)
    data = full.read_bytes()
    cut = tmp_path / "4_cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # the header still promises every frame
    code, out, err = run_predict(capsys, cut, full)
    assert code == 0 and str(cut) in out
    (line,) = [line for line in err.splitlines() if "truncated" in line]
    assert line.startswith(f"warning: {cut}: truncated") and "full.wav" not in err


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that stores raw bytes names")
def test_predict_and_scan_take_the_same_files_and_list_what_they_leave(tmp_path, capsys):
    """One rule: a WAV named .mp3 is used by both, a name that is not UTF-8 refused by both, notes ignored + listed."""
    from audiomnist.catalog import scan

    root = tmp_path / "data"
    (root / "alice").mkdir(parents=True)
    write_wav(root / "alice" / "1_a.wav", 1)
    write_wav(root / "alice" / "3_a.mp3", 3)  # really a WAV
    (root / "alice" / "notes.txt").write_text("not audio")
    (root / "alice" / ".5_hidden.wav").write_bytes(b"")
    raw = os.path.join(os.fsencode(root / "alice"), b"7_caf\xe9.wav")
    shutil.copy(root / "alice" / "1_a.wav", raw)

    catalog = scan(root, layout="folder", progress=False)
    problems: list[tuple[str, str]] = []
    ignored: list[str] = []
    taken = find_audio([str(root)], problems, ignored)
    expected = [str(root / "alice" / n) for n in ("1_a.wav", "3_a.mp3")]
    assert sorted(map(str, taken)) == sorted(catalog.table["path"]) == expected
    assert [r for _, r in problems] == list(catalog.skipped["reason"]) and "UTF-8" in problems[0][1]
    assert ignored == [str(root / "alice" / "notes.txt")] and any("not audio by name" in n for n in catalog.notes)

    code, out, err = run_predict(capsys, root)
    assert code == 0 and "3_a.mp3" in out
    assert "ignored 1 files that are not audio by name: " in err and "notes.txt" in err
    (line,) = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert "7_caf\\xe9.wav" in line and "UTF-8" in line


def test_gated_probabilities_never_show_the_network_a_clip_the_gate_refuses(clf):
    x, sr = sample_clip(3)
    clip = soxr.resample(x, sr, clf.sample_rate).astype(np.float32)
    problems, p = clf.gated_probabilities([np.zeros(clf.sample_rate, np.float32), clip])
    assert problems == ["no speech", None]
    assert np.isnan(p[0]).all() and p[1].sum() == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(p[1], clf.probabilities(clf.windows([clip]))[0], atol=1e-6)
