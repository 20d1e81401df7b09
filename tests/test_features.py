import dataclasses

import librosa
import numpy as np
import pytest
import torch

from audiomnist.errors import AudiomnistError
from audiomnist.features import (
    FeatureConfig,
    LogMel,
    SpecAugmentConfig,
    WaveformFrontend,
    build_frontend,
    spec_augment,
)


def _speechlike(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """A decaying harmonic tone plus faint noise, surrounded by silence: like a padded spoken word."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 200)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    env = np.exp(-(((t - t.mean()) / 0.15) ** 2))
    return (0.3 * tone * env + 1e-3 * rng.standard_normal(n)).astype(np.float32)


RAW = dict(normalize="none", top_db=None, log_floor=1e-6)
CONFIGS = [
    (16000, FeatureConfig(**RAW)),
    (16000, FeatureConfig(**RAW, n_mels=64, f_min=0.0, f_max=7600.0)),
    (8000, FeatureConfig(**RAW, n_fft=256, win_length=200, hop_length=80)),
    (48000, FeatureConfig(**RAW, n_fft=1024, win_length=1024, hop_length=512, n_mels=64, f_min=0.0)),
]


def _librosa_mel(y: np.ndarray, sr: int, cfg: FeatureConfig) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=y,
        sr=sr,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=cfg.n_mels,
        fmin=cfg.f_min,
        fmax=cfg.f_max,
    )


@pytest.mark.parametrize("sr,cfg", CONFIGS)
def test_logmel_matches_librosa(sr, cfg):
    y = _speechlike(sr, sr)
    ours = LogMel(cfg, sr)(torch.from_numpy(y)[None])[0, 0].numpy()
    ref = np.log(_librosa_mel(y, sr, cfg) + cfg.log_floor)
    assert ours.shape == ref.shape == (cfg.n_mels, cfg.num_frames(sr))
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_top_db_matches_librosa_power_to_db():
    cfg = FeatureConfig(normalize="none", top_db=60.0, n_fft=256, win_length=200, hop_length=80)
    y = _speechlike(8000, 8000)
    ours_db = LogMel(cfg, 8000)(torch.from_numpy(y)[None])[0, 0].numpy() * 10 / np.log(10)
    ref_db = librosa.power_to_db(_librosa_mel(y, 8000, cfg), ref=1.0, amin=1e-12, top_db=60.0)
    np.testing.assert_allclose(ours_db, ref_db, atol=1e-3)
    assert (ref_db == ref_db.min()).mean() > 0.1  # the floor really clips the silent frames


def test_default_features_ignore_gain():
    """Peak-relative floor + per-clip standardisation: a quiet and a loud take of one clip look the same."""
    fe = LogMel(FeatureConfig(), 8000)
    y = torch.from_numpy(_speechlike(8000, 8000))[None]
    torch.testing.assert_close(fe(0.05 * y), fe(y), atol=5e-3, rtol=0)


@pytest.mark.parametrize("normalize", ["utterance", "band", "none"])
def test_batch_independence(normalize):
    cfg = FeatureConfig(normalize=normalize)
    fe = LogMel(cfg, 16000)
    waves = torch.from_numpy(np.stack([_speechlike(16000, 16000, s) * g for s, g in enumerate([1.0, 0.01, 3.0])]))
    batch = fe(waves)
    for i in range(len(waves)):
        torch.testing.assert_close(fe(waves[i : i + 1])[0], batch[i], atol=1e-5, rtol=1e-5)


def test_utterance_normalisation_standardises():
    x = LogMel(FeatureConfig(normalize="utterance"), 16000)(torch.from_numpy(_speechlike(16000, 16000))[None])
    assert abs(x.mean().item()) < 1e-4
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)


def test_band_normalisation_centres_each_band():
    x = LogMel(FeatureConfig(normalize="band"), 16000)(torch.from_numpy(_speechlike(16000, 16000))[None])
    torch.testing.assert_close(x.mean(dim=3), torch.zeros(1, 1, 40), atol=1e-4, rtol=0)
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "sr,cfg,frames",
    [
        (8000, FeatureConfig(), 101),
        (8000, FeatureConfig(n_mels=64), 101),
        (16000, FeatureConfig(n_fft=512, win_length=400, hop_length=160, n_mels=32), 101),
        (48000, FeatureConfig(n_fft=1024, win_length=1024, hop_length=512, n_mels=64), 94),
    ],
)
def test_shapes(sr, cfg, frames):
    out = build_frontend(cfg, sr)(torch.randn(3, sr))
    assert out.shape == (3, 1, cfg.n_mels, frames)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_silence_is_finite():
    out = LogMel(FeatureConfig(), 16000)(torch.zeros(2, 16000))
    assert torch.isfinite(out).all()


def test_waveform_frontend():
    fe = build_frontend(FeatureConfig(kind="waveform"), 8000)
    assert isinstance(fe, WaveformFrontend)
    x = torch.randn(4, 8000) * torch.tensor([[0.01], [1.0], [5.0], [100.0]]) + 3.0
    out = fe(x)
    assert out.shape == (4, 1, 8000)
    torch.testing.assert_close(out.mean(-1), torch.zeros(4, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(-1, unbiased=False), torch.ones(4, 1), atol=1e-3, rtol=0)
    torch.testing.assert_close(fe(x[1:2]), out[1:2])


@pytest.mark.parametrize(
    "kwargs",
    [dict(kind="mfcc"), dict(normalize="cmvn"), dict(win_length=1024), dict(hop_length=0), dict(top_db=0.0)],
)
def test_bad_config(kwargs):
    with pytest.raises(AudiomnistError):
        FeatureConfig(**kwargs)


def test_bad_band_and_shape():
    with pytest.raises(AudiomnistError, match="f_max"):
        LogMel(FeatureConfig(f_max=9000.0), 16000)
    with pytest.raises(AudiomnistError, match="batch"):
        LogMel(FeatureConfig(), 16000)(torch.zeros(16000))


# --- SpecAugment ---------------------------------------------------------------------------------------------


def _masked(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return out != x


def test_spec_augment_mask_geometry():
    """Masked cells are whole bands and whole frame spans, each within the configured width, per item."""
    cfg = SpecAugmentConfig(freq_masks=1, time_masks=0, max_freq_frac=0.25)
    x = torch.randn(64, 1, 40, 50) + 5.0
    out = spec_augment(x, cfg, torch.Generator().manual_seed(0))
    m = _masked(x, out)[:, 0]
    rows = m.all(dim=2)
    assert torch.equal(m.any(dim=2), rows)  # a masked band covers every frame
    widths = rows.sum(1)
    assert 0 < widths.max() <= 10
    for r in rows:  # one contiguous band
        idx = torch.nonzero(r).flatten()
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx)

    cfg = SpecAugmentConfig(freq_masks=0, time_masks=3, max_time_frac=0.1)
    out = spec_augment(x, cfg, torch.Generator().manual_seed(1))
    m = _masked(x, out)[:, 0]
    cols = m.all(dim=1)
    assert torch.equal(m.any(dim=1), cols)
    assert cols.sum(1).max() <= 3 * 5


def test_spec_augment_fraction_bounds():
    cfg = SpecAugmentConfig(freq_masks=2, time_masks=2, max_freq_frac=0.1, max_time_frac=0.1)
    x = torch.randn(256, 1, 40, 101) + 5.0
    frac = _masked(x, spec_augment(x, cfg, torch.Generator().manual_seed(0))).float().mean(dim=(1, 2, 3))
    bound = 1 - (1 - 2 * 0.1) * (1 - 2 * 10 / 101)
    assert frac.max() <= bound + 1e-6
    assert 0.05 < frac.mean() < bound


def test_spec_augment_fills_with_item_mean():
    x = torch.randn(8, 1, 40, 101) + torch.arange(8.0).view(8, 1, 1, 1)
    out = spec_augment(x, SpecAugmentConfig(), torch.Generator().manual_seed(0))
    m = _masked(x, out)
    for i in range(8):
        assert torch.allclose(out[i][m[i]], x[i].mean().expand(int(m[i].sum())))


def test_spec_augment_reproducible_and_varied():
    x = torch.randn(16, 1, 40, 101)
    cfg = SpecAugmentConfig()
    a = spec_augment(x, cfg, torch.Generator().manual_seed(7))
    b = spec_augment(x, cfg, torch.Generator().manual_seed(7))
    c = spec_augment(x, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    masks = _masked(x, a)
    assert len({tuple(m.flatten().nonzero().flatten().tolist()) for m in masks}) > 8


def test_spec_augment_off():
    x = torch.randn(4, 1, 40, 101)
    for cfg in [
        SpecAugmentConfig(freq_masks=0, time_masks=0),
        SpecAugmentConfig(max_freq_frac=0.0, max_time_frac=0.0),
    ]:
        assert torch.equal(spec_augment(x, cfg), x)
    cfg = dataclasses.replace(SpecAugmentConfig(), freq_masks=0)
    out = spec_augment(x, cfg, torch.Generator().manual_seed(0))
    assert not _masked(x, out).all(dim=3).any()  # no whole band masked without frequency masks
