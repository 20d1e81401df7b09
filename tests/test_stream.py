"""Streaming VAD and transcription: synthetic bursts for the Segmenter, real FSDD digits for the whole path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from audiomnist import cli
from audiomnist.errors import AudioError
from audiomnist.stream import Segmenter, VadConfig, join_labels, read_blocks, transcribe, transcribe_file

from conftest import fake_encoded

SR = 8000
NUMBER = [(4, 3), (1, 3), (5, 3), (5, 7), (0, 3), (9, 3)]  # (digit, repetition) spoken by jackson: "415509"


def bursts(spans: list[tuple[float, float]], seconds: float, noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """White noise with voiced-like bursts (150 Hz pulse train with harmonics, 20 ms fades) at the given seconds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, noise, round(seconds * SR)).astype(np.float32)
    for a, b in spans:
        t = np.arange(round((b - a) * SR)) / SR
        tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
        fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)
        x[round(a * SR) : round(a * SR) + len(t)] += (0.1 * tone * fade).astype(np.float32)
    return x


def segments(x: np.ndarray, chunk: int | None = None, cfg: VadConfig = VadConfig()):
    seg = Segmenter(SR, cfg, window_samples=SR)
    chunks = [x] if chunk is None else [x[i : i + chunk] for i in range(0, len(x), chunk)]
    return [s for c in chunks for s in seg.feed(c)] + seg.flush()


def test_bursts_found_with_their_boundaries():
    spans = [(0.5, 0.9), (1.6, 1.9), (2.6, 3.1), (3.8, 4.0)]
    found = segments(bursts(spans, 5.0))
    assert len(found) == len(spans)
    for s, (a, b) in zip(found, spans):
        start, end = s.seconds
        assert a - 0.06 <= start <= a + 0.02, (start, a)
        assert b - 0.03 <= end <= b + 0.06, (end, b)
        assert s.sample_rate == SR and len(s.audio) == s.end - s.start


def test_segments_do_not_depend_on_chunk_size():
    x = bursts([(0.3, 0.7), (1.2, 1.5), (2.0, 3.6)], 4.5, seed=1)
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(1, 700, 200))
    ragged = np.split(x, cuts[cuts < len(x)])
    reference = segments(x, 4096)
    seg = Segmenter(SR, VadConfig(), window_samples=SR)
    by_ragged = [s for c in ragged for s in seg.feed(c)] + seg.flush()
    for name, found in [("1", segments(x, 1)), ("whole", segments(x)), ("ragged", by_ragged)]:
        assert [s.start for s in found] == [s.start for s in reference], name
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(found, reference)), name


def test_speech_longer_than_the_window_is_split_into_window_sized_pieces():
    found = segments(bursts([(0.5, 3.0)], 4.0))
    assert len(found) == 3
    assert all(len(s.audio) <= SR for s in found)
    assert [a.end for a in found[:-1]] == [b.start for b in found[1:]]  # contiguous: nothing lost, nothing doubled
    assert found[0].seconds[0] < 0.5 and found[-1].seconds[1] > 2.95


def test_silence_noise_and_clicks_give_nothing():
    rng = np.random.default_rng(0)
    click = rng.normal(0, 1e-3, 3 * SR).astype(np.float32)
    click[SR : SR + 80] += 0.5 * np.hanning(80).astype(np.float32)  # 10 ms pop
    assert segments(np.zeros(3 * SR, np.float32)) == []
    assert segments(rng.normal(0, 1e-2, 5 * SR).astype(np.float32)) == []
    assert segments(click) == []


def test_noise_floor_follows_louder_noise():
    x = bursts([(6.0, 6.4)], 8.0, noise=1e-4)
    x[2 * SR :] += np.random.default_rng(1).normal(0, 1e-2, 6 * SR).astype(np.float32)  # +40 dB from 2 s
    found = segments(x)
    late = [s for s in found if s.seconds[0] > 2 + VadConfig().floor_window_s]
    assert len(late) == 1 and abs(late[0].seconds[0] - 6.0) < 0.06


def test_vad_config_rejects_inconsistent_thresholds():
    with pytest.raises(ValueError, match="release_db"):
        VadConfig(onset_db=3, release_db=6)
    with pytest.raises(ValueError, match="max_segment_ms"):
        Segmenter(SR, VadConfig(max_segment_ms=None))


def test_read_blocks_reads_lazily_in_blocks_and_reports_bad_files(tmp_path):
    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (2500, 2)).astype(np.float32)
    sf.write(tmp_path / "s.wav", stereo, 8000, subtype="FLOAT")
    sr, blocks = read_blocks(tmp_path / "s.wav", block_ms=100)
    got = list(blocks)
    assert sr == 8000 and [len(b) for b in got] == [800, 800, 800, 100]
    np.testing.assert_allclose(np.concatenate(got), stereo.mean(axis=1), atol=1e-7)
    with pytest.raises(AudioError, match="file not found"):
        read_blocks(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="junk.wav: not a readable audio file"):
        read_blocks(tmp_path / "junk.wav")


def test_join_labels():
    assert join_labels(["4", "1", "5"]) == "415"
    assert join_labels(["male", "female"]) == "male female"
    assert join_labels([]) == ""


# --- the whole path on real speech: FSDD clips joined with pauses and background noise ---


@pytest.fixture(scope="module")
def number_recording(fsdd_dir, tmp_path_factory) -> dict[int, Path]:
    """'415509' by one FSDD speaker, 0.4-0.8 s pauses, white noise 30 dB under the speech; at 8 and 44.1 kHz.

    fsdd_dir (tests/conftest.py) is ../shared/data/fsdd/recordings next to the repo, or skips the test.
    """
    rng = np.random.default_rng(0)
    clips = [sf.read(fsdd_dir / f"{d}_jackson_{i}.wav", dtype="float32")[0] for d, i in NUMBER]
    noise = np.sqrt(np.mean(np.concatenate(clips) ** 2)) * 10 ** (-30 / 20)
    parts = []
    for c in clips:
        parts += [np.zeros(round(rng.uniform(0.4, 0.8) * SR), np.float32), c]
    x = np.concatenate(parts + [np.zeros(SR // 2, np.float32)])
    x += rng.normal(0, noise, len(x)).astype(np.float32)
    out = tmp_path_factory.mktemp("number")
    sf.write(out / "number_8k.wav", x, SR)
    sf.write(out / "number_44k.wav", soxr.resample(x, SR, 44100), 44100)
    return {SR: out / "number_8k.wav", 44100: out / "number_44k.wav"}


@pytest.fixture(scope="module")
def classifier():
    from audiomnist.infer import Classifier

    return Classifier.load()


def expected() -> str:
    return "".join(str(d) for d, _ in NUMBER)


@pytest.mark.parametrize("rate", [SR, 44100])
def test_listen_input_prints_the_digit_string(number_recording, rate, capsys):
    assert cli.main(["listen", "--input", str(number_recording[rate])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == expected()
    assert len(lines) == len(NUMBER) + 1  # one line per digit, then the string


def test_transcribe_any_block_size_and_rate_gives_the_digits_in_order(number_recording, classifier):
    sr, blocks = read_blocks(number_recording[44100], block_ms=37)
    heard = list(transcribe(blocks, classifier, sr))
    assert join_labels(d.label for d in heard) == expected()
    assert all(a.end <= b.start for a, b in zip(heard, heard[1:]))
    assert all(d.prediction.probability > 0.5 for d in heard)
    from_file = [d.label for d in transcribe_file(number_recording[SR], classifier, block_ms=100)]
    assert join_labels(from_file) == expected()


def test_numpy_highpass_equals_scipys():
    """Without scipy (the base install) the VAD's high-pass is designed and run in numpy: the same filter."""
    from scipy.signal import butter, sosfilt

    from audiomnist.stream import highpass_sos, sosfilt_numpy

    for hz, fs in ((100.0, 8000), (150.0, 16000), (60.0, 48000)):
        sos = highpass_sos(hz, fs)
        np.testing.assert_allclose(sos, butter(2, hz, "highpass", fs=fs, output="sos"), rtol=1e-12, atol=1e-14)
        x = np.random.default_rng(0).standard_normal(3000)
        zi_a = zi_b = np.zeros((1, 2))
        for chunk in np.split(x, [700, 1500]):  # streaming: the state carries over
            a, zi_a = sosfilt(sos, chunk, zi=zi_a)
            b, zi_b = sosfilt_numpy(sos, chunk, zi=zi_b)
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_read_blocks_other_formats_through_ffmpeg(fake_ffmpeg, tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 2500).astype(np.float32)
    (tmp_path / "memo.m4a").write_bytes(fake_encoded(x))
    sr, blocks = read_blocks(tmp_path / "memo.m4a", block_ms=100)
    got = list(blocks)
    assert sr == 8000 and [len(b) for b in got] == [800, 800, 800, 100]
    np.testing.assert_array_equal(np.concatenate(got), x)


def test_read_blocks_of_a_file_that_cannot_seek(tmp_path):
    """GSM 6.10 in a WAV (as phones and sox write it): libsndfile reads it only when told its length."""
    x = np.random.default_rng(0).uniform(-0.3, 0.3, 2500).astype(np.float32)
    sf.write(tmp_path / "gsm.wav", x, 8000, format="WAV", subtype="GSM610")
    assert not sf.SoundFile(tmp_path / "gsm.wav").seekable()
    sr, blocks = read_blocks(tmp_path / "gsm.wav", block_ms=100)
    got = list(blocks)
    assert sr == 8000 and [len(b) for b in got] == [800, 800, 800, 160]  # GSM frames are 160 samples
