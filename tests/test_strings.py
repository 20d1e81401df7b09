"""Clips named by what they say, and strings assembled from one speaker's isolated clips."""

import numpy as np
import pytest
import soundfile as sf

from audiomnist.errors import AudiomnistError
from audiomnist.strings import (
    TEST_ASSEMBLY,
    WORD,
    AssemblyConfig,
    StringMaker,
    _join,
    assemble,
    held_out_strings,
    list_clips,
    list_negatives,
    load_clips,
    time_stretch,
)

from conftest import SR, tone_digit, write_tone_set


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return write_tone_set(tmp_path_factory.mktemp("tones"), speakers=3, reps=2)


def test_list_clips_reads_digit_strings_and_lists_what_it_leaves_out(tmp_path, capsys):
    for name in ("4155_s1_0.wav", "7_s2_3.wav", "hello.wav", "one_sample.wav", "1234567890123_s1_0.wav"):
        sf.write(tmp_path / name, tone_digit(1, 1, 0), SR)
    sf.write(tmp_path / "8_s3_0.flac", tone_digit(8, 3, 0), SR)
    (tmp_path / "9_s3_1.mp3").write_bytes((tmp_path / "7_s2_3.wav").read_bytes())  # a WAV named .mp3, as predict
    (tmp_path / "speakers.json").write_text("{}")
    assert [(d, s) for _, d, s in list_clips(tmp_path)] == [("4155", "s1"), ("7", "s2"), ("8", "s3"), ("9", "s3")]
    assert "3 audio files not named {digits}_{speaker}_{take} left out" in capsys.readouterr().err
    (tmp_path / "5_s4_0.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "6_s4_0.wav").symlink_to(tmp_path / "6_s4_0.wav")
    assert len(list_clips(tmp_path)) == 4  # the good clips still read
    err = capsys.readouterr().err
    assert "5_s4_0.wav: broken symlink" in err and "6_s4_0.wav: symlink loop" in err
    with pytest.raises(AudiomnistError, match="no such folder"):
        list_clips(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudiomnistError, match="no audio files named"):
        list_clips(tmp_path / "empty")


def test_load_clips_trims_caches_and_lists_unreadable(tones, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "3_09_0.wav").write_bytes(b"RIFF not really")
    sf.write(bad / "4_09_0.wav", tone_digit(4, 9, 0, lead_s=(0.3, 0.3)), SR)
    clips = load_clips([str(tones), str(bad)], SR, progress=False)
    assert len(clips) == 3 * 10 * 2 + 1 and clips.source.count(1) == 1
    assert "3_09_0.wav" in capsys.readouterr().err
    assert len(clips.audio[-1]) < 0.7 * SR  # the 0.3 s of leading silence is trimmed
    again = load_clips([str(tones), str(bad)], SR, progress=False)  # from the cache: the same clips
    assert all(np.array_equal(a, b) for a, b in zip(clips.audio, again.audio))


def test_join_overlaps_with_crossfade_and_pads_gaps():
    a, b = np.ones(100, np.float32), np.ones(100, np.float32)
    assert len(_join([a, b], [50])) == 250
    over = _join([a, b], [-20])
    assert len(over) == 180 and over.max() <= 1.0 + 1e-6  # the faded ends sum to at most full level


def test_assembled_strings_are_deterministic_and_sized(tones):
    clips = load_clips([str(tones)], SR, progress=False)
    maker = StringMaker(clips, SR, AssemblyConfig(min_digits=3, max_digits=5))
    x1, d1 = maker.make(np.random.default_rng(5))
    x2, d2 = maker.make(np.random.default_rng(5))
    assert d1 == d2 and np.array_equal(x1, x2) and 3 <= len(d1) <= 5 and d1.isdigit()
    assert np.abs(x1).max() <= 1.0 and np.isfinite(x1).all()
    ten = held_out_strings(clips, SR, ["02"], per_speaker=4, length=10, seed=0)
    assert [len(d) for _, d in ten] == [10] * 4
    # No pauses: ten words of 0.35-0.6 s with +-40 ms gaps and 2 x 200 ms edges.
    assert all(10 * 0.3 + 0.4 < len(x) / SR < 10 * 0.65 + 0.4 for x, _ in ten)
    assert TEST_ASSEMBLY.pause_prob == 0


def test_a_speaker_missing_a_digit_cannot_say_numbers(tmp_path):
    for d in range(9):
        sf.write(tmp_path / f"{d}_x_0.wav", tone_digit(d, 1, 0), SR)
    with pytest.raises(AudiomnistError, match="all ten digits"):
        StringMaker(load_clips([str(tmp_path)], SR, progress=False), SR, AssemblyConfig())


def test_word_ends_are_where_the_words_end(tones):
    clips = load_clips([str(tones)], SR, progress=False)
    maker = StringMaker(clips, SR, TEST_ASSEMBLY)
    x, digits, ends = maker.make_timed(np.random.default_rng(1), "01", 6)
    assert len(ends) == 6 and np.all(np.diff(ends) > 0.25 * SR)
    assert ends[-1] == len(x) - round(0.2 * SR)  # the trailing 200 ms edge
    energy = np.abs(x[int(ends[-1]) :]).max()
    assert energy < 0.1 * np.abs(x).max()  # nothing but background after the last word's end


def test_tilt_brightens_or_darkens_each_string_and_is_off_by_default(tones):
    clips = load_clips([str(tones)], SR, progress=False)
    words = [clips.audio[i] for i in range(4)]
    quiet = dict(room_prob=0.0, snr_db=(80.0, 80.0), edge_ms=(50.0, 50.0), level_db=(-6.0, -6.0), tempo=(1.0, 1.0))

    def high_share(x):
        spec = np.abs(np.fft.rfft(x)) ** 2
        return spec[len(spec) // 2 :].sum() / spec.sum()

    ratios = []
    for seed in range(20):
        flat, _ = assemble(words, SR, AssemblyConfig(**quiet), np.random.default_rng(seed))
        tilted, _ = assemble(words, SR, AssemblyConfig(**quiet, tilt=0.6), np.random.default_rng(seed))
        ratios.append(high_share(tilted) / high_share(flat))
    assert min(ratios) < 0.8 and max(ratios) > 1.25, ratios
    assert AssemblyConfig().tilt == 0 and TEST_ASSEMBLY.tilt == 0
    with pytest.raises(AudiomnistError):
        AssemblyConfig(tilt=1.0)


def test_stretch_speeds_words_up_keeping_their_pitch(tones):
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    y = time_stretch(x, SR, 1.5)
    assert abs(len(y) - SR / 1.5) < 0.02 * SR
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
    assert abs(peak_hz - 220) < 10, peak_hz  # resampling 1.5 x faster would move it to 330 Hz
    clips = load_clips([str(tones)], SR, progress=False)
    words = [clips.audio[i] for i in range(4)]
    quiet = dict(room_prob=0.0, edge_ms=(50.0, 50.0), tempo=(1.0, 1.0), gap_ms=(0.0, 0.0), pause_prob=0.0)
    plain, ends = assemble(words, SR, AssemblyConfig(**quiet), np.random.default_rng(0))
    fast, fast_ends = assemble(words, SR, AssemblyConfig(**quiet, stretch=(1.5, 1.5)), np.random.default_rng(0))
    speech, fast_speech = ends[-1] - 0.05 * SR, fast_ends[-1] - 0.05 * SR
    assert abs(fast_speech - speech / 1.5) < 0.02 * SR and len(fast) < len(plain)
    for bad in ((0.0, 1.0), (1.4, 1.2)):
        with pytest.raises(AudiomnistError, match="stretch"):
            AssemblyConfig(stretch=bad)


def test_non_digit_clips_are_listed_whatever_their_names_say(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("7_amrita_0.flac", "sub/0_n-noise-003_30.wav", "hello.wav", "word_x_1.ogg"):
        sf.write(tmp_path / name, tone_digit(1, 1, 0), SR)
    (tmp_path / "notes.txt").write_text("not audio")
    rows = list_negatives(tmp_path)
    assert [(p.name, t, s) for p, t, s in rows] == [
        ("7_amrita_0.flac", "", "amrita"), ("hello.wav", "", "hello"), ("0_n-noise-003_30.wav", "", "n-noise-003"),
        ("word_x_1.ogg", "", "x"),
    ]  # fmt: skip
    clips = load_clips([str(tmp_path)], SR, progress=False, lister=list_negatives)
    assert clips.text == ["", "", "", ""] and all(len(a) for a in clips.audio)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudiomnistError, match="no audio files"):
        list_negatives(tmp_path / "empty")


def test_words_said_among_the_digits_add_no_digit(tones):
    clips = load_clips([str(tones)], SR, progress=False)
    maker = StringMaker(clips, SR, TEST_ASSEMBLY)
    word = np.sin(np.linspace(0, 900, int(0.4 * SR))).astype(np.float32) * 0.5
    plain, d0, ends0 = maker.make_timed(np.random.default_rng(3), "01", 4)
    mixed, d1, ends1 = maker.make_timed(np.random.default_rng(3), "01", 4, others=[word, word])
    assert d1 == d0 and len(ends1) == 4 and np.all(np.diff(ends1) > 0)
    assert len(mixed) > len(plain) + 0.6 * SR  # two 0.4 s words more, less their gaps
    alone, d2, ends2 = maker.make_timed(np.random.default_rng(3), "01", 0, others=[word])
    assert d2 == "" and len(ends2) == 0 and len(alone) > 0.4 * SR
    with pytest.raises(AudiomnistError, match="a digit or another word"):
        maker.make_timed(np.random.default_rng(3), "01", 0)
    marked, d3, ends3 = maker.make_timed(np.random.default_rng(3), "01", 4, others=[word, word], mark=WORD)
    assert np.array_equal(marked, mixed) and d3.replace(WORD, "") == d0 and d3.count(WORD) == 2
    assert np.array_equal(ends3, ends1)
