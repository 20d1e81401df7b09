"""Audio front-end: decoding every format, resampling, energy crop, window fitting, bad files."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from audiomnist.audio import (
    MAX_APERIODICITY,
    AudioConfig,
    aperiodicity,
    centre_on_speech,
    crop_on_energy,
    eval_noise,
    fit_windows,
    load_audio,
    prepare,
    speech_span,
    voiced_frames,
)
from audiomnist.catalog import sample_root
from audiomnist.errors import AudioError, AudiomnistError
from audiomnist.placement import fit_batch, load_clip

from conftest import fake_encoded


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def test_config_defaults_and_validation():
    cfg = AudioConfig()
    assert (cfg.sample_rate, cfg.duration_ms, cfg.pad_mode, cfg.cache_dtype) == (16000, 1000, "zeros", "int16")
    assert cfg.num_samples == 16000
    assert AudioConfig(sample_rate=8000, duration_ms=500).num_samples == 4000
    for bad in (dict(pad_mode="reflect"), dict(cache_dtype="int8"), dict(resample_quality="QQ"), dict(sample_rate=0)):
        with pytest.raises(ValueError):
            AudioConfig(**bad)


@pytest.mark.parametrize(
    "fmt, subtype, tol",
    [
        ("WAV", "PCM_U8", 1 / 100),
        ("WAV", "PCM_16", 1e-4),
        ("WAV", "PCM_24", 1e-6),
        ("WAV", "PCM_32", 1e-6),
        ("WAV", "FLOAT", 1e-7),
        ("WAV", "DOUBLE", 1e-7),
        ("FLAC", "PCM_16", 1e-4),
        ("FLAC", "PCM_24", 1e-6),
        ("OGG", "VORBIS", None),
    ],
)
def test_reads_every_format(tmp_path, fmt, subtype, tol):
    x = sine(440, 16000, 0.5)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == len(x)
    if tol is None:  # lossy: same tone, same level
        assert abs(peak_hz(y, 16000) - 440) < 5
        assert abs(y.std() - x.std()) < 0.05 * x.std()
    else:
        assert np.abs(y - x).max() <= tol


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = sine(440, 16000, 0.3), sine(1000, 16000, 0.3, amp=0.2)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav", 16000), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000, 96000])
def test_resampling_keeps_length_and_pitch(tmp_path, sr):
    sf.write(tmp_path / "t.wav", sine(1000, sr, 1.0), sr, subtype="PCM_16")
    y = load_audio(tmp_path / "t.wav", 16000)
    assert abs(len(y) - 16000) <= 1
    assert abs(peak_hz(y, 16000) - 1000) <= 2
    assert abs(y[1000:-1000].std() * np.sqrt(2) - 0.5) < 0.01  # no level loss inside the passband


def test_resampling_removes_what_cannot_be_represented(tmp_path):
    sf.write(tmp_path / "hi.wav", sine(11000, 48000, 1.0), 48000, subtype="FLOAT")
    y = load_audio(tmp_path / "hi.wav", 16000)  # 11 kHz is above the new Nyquist: must vanish, not alias to 5 kHz
    assert np.abs(y[1000:-1000]).max() < 1e-3


def test_max_seconds_reads_only_the_start_of_a_long_file(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 600, np.int16), 16000, subtype="PCM_16")  # 10 minutes
    tracemalloc.start()
    y = load_audio(path, 16000, max_seconds=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(y) == 32000
    assert peak < 2_000_000  # the whole file as float32 would be 38 MB


def test_energy_crop_finds_a_late_burst():
    sr, n = 16000, 16000
    x = np.random.default_rng(0).normal(0, 1e-3, int(3.5 * sr)).astype(np.float32)
    start = int(2.9 * sr)
    x[start : start + 4000] += sine(300, sr, 0.25)
    y = crop_on_energy(x, n)
    assert len(y) == n
    assert np.abs(y).max() > 0.4
    burst_in_crop = np.flatnonzero(np.abs(y) > 0.1)
    assert len(burst_in_crop) > 0.6 * 4000 and (y**2).sum() > 0.99 * (x[start : start + 4000] ** 2).sum()
    short = x[:100]
    assert crop_on_energy(short, n) is short
    y, k = prepare(x, AudioConfig())
    assert k == len(y) == n


def test_speech_span_finds_the_word_between_quiet_stretches():
    sr, frame = 8000, 80
    x = np.random.default_rng(1).normal(0, 1e-3, 2 * sr).astype(np.float32)
    x[6000:8400] += sine(300, sr, 0.3)
    start, end = speech_span(x, sr)
    assert abs(start - 6000) <= frame and abs(end - 8400) <= frame
    assert speech_span(x[:50], sr) == (0, 50)  # shorter than a frame: all of it
    assert speech_span(np.zeros(800, np.float32), sr) == (0, 800)  # nothing louder than anything else
    assert speech_span(sine(300, sr, 0.5), sr) == (0, 4000)  # nothing quieter either


@pytest.mark.parametrize("lead", [0, 3000, 12000, 20000])
def test_windows_centre_the_word_wherever_it_is_said(lead):
    """A word at the start, middle or end of a recording longer or shorter than the window lands at its centre."""
    cfg, sr = AudioConfig(sample_rate=8000), 8000
    x = np.zeros(lead + 2400 + max(0, 20000 - lead), np.float32)
    x[lead : lead + 2400] = sine(300, sr, 0.3)
    part, centre = centre_on_speech(x, cfg.num_samples, sr)
    assert len(part) <= cfg.num_samples
    w = fit_windows([part], cfg, [centre])[0]
    loud = np.flatnonzero(np.abs(w) > 0.1)
    assert len(loud) > 2000 and abs((loud[0] + loud[-1]) / 2 - cfg.num_samples / 2) <= 80


def test_speech_longer_than_the_window_keeps_its_loudest_stretch():
    sr, n = 8000, 8000
    x = np.concatenate([sine(300, sr, 0.5, 0.2), np.zeros(5000, np.float32), sine(300, sr, 0.5, 0.5)])
    part, centre = centre_on_speech(x, n, sr)
    assert centre is None and np.array_equal(part, crop_on_energy(x, n))


def ramps(lengths: list[int], L: int) -> torch.Tensor:
    """Left-aligned clips 1..len (never 0 inside, so a clip is easy to find in the window)."""
    clips = torch.zeros(len(lengths), L)
    for i, k in enumerate(lengths):
        clips[i, :k] = torch.arange(1, k + 1) / 100000
    return clips


def test_fit_batch_centres_in_eval():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000)
    lengths = [1000, 400, 3, 0]
    clips = ramps(lengths, 1000)
    out = fit_batch(clips, torch.tensor(lengths), cfg, train=False)
    assert out.shape == (4, 1000) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], clips[0])
    torch.testing.assert_close(out[1, 300:700], clips[1, :400])
    assert out[1, :300].abs().sum() == 0 and out[1, 700:].abs().sum() == 0
    torch.testing.assert_close(out[2, 498:501], clips[2, :3])
    assert out[3].abs().sum() == 0


def test_fit_batch_crops_long_clips_centred_in_eval():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000)
    clips = ramps([1600], 1600)
    out = fit_batch(clips, torch.tensor([1600]), cfg, train=False)
    torch.testing.assert_close(out[0], clips[0, 300:1300])


def offsets(out: torch.Tensor) -> list[int]:
    return [int(torch.nonzero(row)[0, 0]) for row in out]


def test_fit_batch_random_offsets_in_train():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000)
    lengths = [200] * 16
    clips = ramps(lengths, 1000)
    L = torch.tensor(lengths)
    a = fit_batch(clips, L, cfg, train=True, generator=torch.Generator().manual_seed(1))
    b = fit_batch(clips, L, cfg, train=True, generator=torch.Generator().manual_seed(1))
    c = fit_batch(clips, L, cfg, train=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert len(set(offsets(a))) > 8 and offsets(a) != offsets(c)
    for row, off in zip(a, offsets(a)):
        assert 0 <= off <= 800
        torch.testing.assert_close(row[off : off + 200], clips[0, :200])
        assert row.abs().sum() == pytest.approx(clips[0].abs().sum())


def test_fit_batch_train_offsets_reach_both_ends():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000)
    clips = ramps([990] * 256, 1000)
    out = fit_batch(clips, torch.tensor([990] * 256), cfg, train=True, generator=torch.Generator().manual_seed(0))
    assert set(offsets(out)) == set(range(11))


def test_fit_batch_shift_equals_shifting_the_placed_window():
    """A shift given to fit_batch is the same as placing the clip and then shifting the window (zero fill), cropped
    at both edges, including shifts that push a clip out of the window entirely; a clip longer than the window
    shows more of itself instead of zeros."""
    from audiomnist.augment import _shift

    cfg = AudioConfig(sample_rate=1000, duration_ms=1000)
    lengths = [300, 300, 300, 1000, 1200, 50, 300]
    clips = ramps(lengths, 1200)
    L = torch.tensor(lengths)
    shift = torch.tensor([0, 450, -600, 120, -80, 1500, -1400])
    for train in (False, True):
        placed = fit_batch(clips, L, cfg, train=train, generator=torch.Generator().manual_seed(3))
        fused = fit_batch(clips, L, cfg, train=train, generator=torch.Generator().manual_seed(3), shift=shift)
        fits = L <= 1000
        torch.testing.assert_close(fused[fits], _shift(placed, shift.float())[fits], rtol=0, atol=0)
        if not train:
            torch.testing.assert_close(fused[4], clips[4, 180:1180])  # centred crop at 100, then 80 further on
    assert fused[5].abs().sum() == 0 and fused[6].abs().sum() == 0


def test_fit_batch_shift_keeps_noise_padding_at_the_edges():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000, pad_mode="noise")
    clips = torch.from_numpy(np.random.default_rng(2).uniform(-0.05, 0.05, (1, 400)).astype(np.float32))
    out = fit_batch(
        clips,
        torch.tensor([400]),
        cfg,
        train=False,
        generator=torch.Generator().manual_seed(0),
        shift=torch.tensor([400]),
    )
    torch.testing.assert_close(out[0, 700:], clips[0, :300])
    assert (out[0, :700] != 0).all(), "the pad's noise, not a stripe of digital silence"


def test_noise_padding_stays_in_the_clips_own_range():
    sr = 1000
    cfg = AudioConfig(sample_rate=sr, duration_ms=1000, pad_mode="noise")
    rng = np.random.default_rng(0)
    quiet = rng.uniform(-0.01, 0.01, 300)
    loud = 0.8 * np.sin(np.arange(300) / 3)
    x = np.concatenate([quiet[:150], loud, quiet[150:]]).astype(np.float32)
    dc = (0.3 + rng.uniform(0, 0.1, 500)).astype(np.float32)  # all positive: noise must stay positive too
    clips = torch.zeros(3, 1000)
    clips[0, :600] = torch.from_numpy(x)
    clips[1, :500] = torch.from_numpy(dc)
    lengths = torch.tensor([600, 500, 0])
    out = fit_batch(clips, lengths, cfg, train=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[0, 200:800], clips[0, :600])
    pad0 = torch.cat([out[0, :200], out[0, 800:]])
    assert pad0.abs().max() <= 0.01 and pad0.std() > 0.001  # the clip's own background, not its speech
    pad1 = torch.cat([out[1, :250], out[1, 750:]])
    assert pad1.min() >= 0.3 and pad1.max() <= 0.4
    assert out[2].abs().sum() == 0


def test_noise_padding_in_evaluation_is_repeatable_and_batch_independent():
    cfg = AudioConfig(sample_rate=1000, duration_ms=1000, pad_mode="noise")
    clips = torch.from_numpy(np.random.default_rng(1).uniform(-0.05, 0.05, (3, 400)).astype(np.float32))
    lengths = torch.tensor([400, 300, 200])
    once, again = fit_batch(clips, lengths, cfg, train=False), fit_batch(clips, lengths, cfg, train=False)
    torch.testing.assert_close(once, again, rtol=0, atol=0)
    alone = fit_batch(clips[1:2], lengths[1:2], cfg, train=False)
    torch.testing.assert_close(alone[0], once[1], rtol=0, atol=0)
    assert once[0, :300].std() > 0, "still noise, not zeros"


def test_eval_noise_is_torchs_seeded_pattern():
    for n in (1, 7, 8000, 48000):
        want = torch.rand(1, n, generator=torch.Generator().manual_seed(0))[0].numpy()
        np.testing.assert_array_equal(eval_noise(n), want)


@pytest.mark.parametrize("pad_mode", ["zeros", "noise"])
def test_fit_windows_in_numpy_equals_fit_batch_in_evaluation(pad_mode):
    """The torch-free placement inference uses gives the very samples of the batched torch one, for clips shorter,
    equal and longer than the window, odd slack, shorter than a noise frame, empty, silent, and from real speech."""
    cfg = AudioConfig(sample_rate=8000, duration_ms=1000, pad_mode=pad_mode)
    rng = np.random.default_rng(3)
    lengths = [0, 1, 50, 79, 80, 81, 1999, 4001, 7999, 8000, 8001, 9999, 12000]
    clips = [(rng.uniform(-0.5, 0.5, n) * np.linspace(0, 1, n) ** 2).astype(np.float32) for n in lengths]
    clips.append(np.zeros(3000, np.float32))
    real = load_audio(sample_root() / "01" / "3_01_0.flac", 8000)
    clips += [real, prepare(real, cfg)[0]]
    width = max(len(c) for c in clips)
    batch = torch.zeros(len(clips), width)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = torch.from_numpy(c)
    want = fit_batch(batch, torch.tensor([len(c) for c in clips]), cfg, train=False).numpy()
    np.testing.assert_array_equal(fit_windows(clips, cfg), want)
    for i, c in enumerate(clips):  # alone, as in a batch: nothing depends on the other clips
        np.testing.assert_array_equal(fit_windows([c], cfg)[0], want[i])


def test_load_clip_is_one_centred_window(tmp_path):
    sf.write(tmp_path / "c.wav", sine(500, 8000, 0.5), 8000, subtype="PCM_16")
    y = load_clip(tmp_path / "c.wav", AudioConfig())
    assert y.shape == (16000,) and y.dtype == torch.float32
    assert y[:3900].abs().max() == 0 and y[12100:].abs().max() == 0
    assert y[4100:11900].abs().max() > 0.45


def write_bad(tmp_path, kind: str):
    path = tmp_path / f"{kind}.wav"
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "truncated_header":
        sf.write(path, sine(440, 16000, 0.1), 16000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "nan":
        x = sine(440, 16000, 0.1)
        x[100] = np.nan
        sf.write(path, x, 16000, subtype="FLOAT")
    elif kind == "no_frames":
        sf.write(path, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    return path


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("zero_bytes", "empty"),
        ("text", "not a readable audio file"),
        ("truncated_header", "not a readable audio file"),
        ("nan", "NaN"),
        ("no_frames", "no audio samples"),
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, kind, reason):
    path = write_bad(tmp_path, kind)
    with pytest.raises(AudioError) as e:
        load_audio(path, 16000)
    assert isinstance(e.value, AudiomnistError)
    assert str(e.value).startswith(str(path)) and reason in str(e.value)
    assert e.value.path == str(path)


def test_missing_file_raises_audio_error(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav", 16000)


def pulses(f0: float, sr: int, seconds: float) -> np.ndarray:
    """A glottal-like pulse train: periodic, with harmonics up to Nyquist."""
    x = np.zeros(int(sr * seconds), np.float32)
    x[(np.arange(0, seconds, 1 / f0) * sr).astype(int)] = 0.5
    return np.convolve(x, np.hanning(9), mode="same").astype(np.float32)


@pytest.mark.parametrize("f0", [70, 120, 250, 450])
def test_a_pitch_in_the_voice_range_is_periodic_and_white_noise_is_not(f0):
    voiced, level = aperiodicity(pulses(f0, 8000, 0.5), 8000)
    assert np.median(voiced) < 0.1 and (level > -60).all()
    noise, _ = aperiodicity(np.random.default_rng(f0).normal(0, 0.1, 4000), 8000)
    assert noise.min() > MAX_APERIODICITY, noise.min()


def test_voiced_frames_at_any_rate_and_across_the_blocks_of_a_long_recording():
    rng = np.random.default_rng(0)
    for sr in (8000, 16000, 48000):
        assert voiced_frames(pulses(150, sr, 0.3), sr) == 3  # counting stops once there are enough
        assert voiced_frames(rng.normal(0, 0.1, sr).astype(np.float32), sr) == 0
    # 25 s of noise with a pitch only at its end and across the boundary of two blocks of frames (every 0.5 s)
    x = rng.normal(0, 0.1, 25 * 8000)
    x[-4000:] = pulses(150, 8000, 0.5)
    x[80000 - 2000 : 80000 + 2000] += pulses(150, 8000, 0.5)  # 80000: a multiple of 4000 samples
    whole, level = aperiodicity(x, 8000)
    expected = int(np.count_nonzero((whole < MAX_APERIODICITY) & (level >= -60)))
    assert expected > 40 and voiced_frames(x, 8000, enough=10**9) == expected


def test_other_formats_go_through_ffmpeg(fake_ffmpeg, tmp_path):
    x = (0.1 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    path = tmp_path / "memo.m4a"
    path.write_bytes(fake_encoded(x))
    np.testing.assert_allclose(load_audio(path, 8000), x, atol=1e-6)  # its two channels downmixed
    assert len(load_audio(path, 16000)) == 8000 and len(load_audio(path, 8000, max_seconds=0.1)) == 800


def test_other_formats_without_ffmpeg_say_what_would_read_them(no_ffmpeg, tmp_path):
    path = tmp_path / "memo.m4a"
    path.write_bytes(fake_encoded(np.zeros(100)))
    with pytest.raises(AudioError) as e:
        load_audio(path, 8000)
    said = str(e.value)
    assert said.startswith(f"{path}: not a readable audio file (") and "install ffmpeg to read .m4a" in said


def test_a_broken_file_ffmpeg_cannot_read_either(fake_ffmpeg, tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"this is not audio\n" * 10)
    with pytest.raises(AudioError, match=r"junk.wav: not a readable audio file \(.*; ffmpeg: Invalid data"):
        load_audio(path, 8000)
