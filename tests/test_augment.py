import dataclasses
import math

import numpy as np
import pytest
import torch

from audiomnist.augment import AugmentConfig, augment_waveforms, mixup, reverse_as_none
from audiomnist.errors import AudiomnistError

SR = 8000
OFF = AugmentConfig(shift_ms=0, speed=(1.0, 1.0), gain_db=0.0, noise_prob=0.0)


def _bursts(b: int = 8, n: int = SR) -> torch.Tensor:
    """Clips that are silent except for a tone burst in the middle."""
    t = torch.arange(n) / SR
    x = torch.zeros(b, n)
    x[:, n // 2 - 1000 : n // 2 + 1000] = torch.sin(2 * math.pi * 440 * t[:2000])
    return x * torch.linspace(0.1, 1.0, b)[:, None]


def _centroid(x: torch.Tensor) -> torch.Tensor:
    e = x.square()
    return (e * torch.arange(x.shape[1])).sum(1) / e.sum(1)


def test_identity_when_disabled():
    x = torch.randn(4, SR)
    assert torch.equal(augment_waveforms(x, OFF, SR), x)


def test_shapes_and_dtype():
    x = torch.randn(5, 12345)
    out = augment_waveforms(
        x, AugmentConfig(speed=(0.9, 1.1), noise_color="pink"), SR, torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_reproducible_with_seed():
    x = _bursts()
    cfg = AugmentConfig(speed=(0.9, 1.1), noise_prob=1.0)
    a = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(3))
    b = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(3))
    c = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shift_moves_content_with_zero_fill():
    x = _bursts(64)
    cfg = AugmentConfig(shift_ms=100, gain_db=0.0, noise_prob=0.0)
    out = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    moved = _centroid(out) - _centroid(x)
    assert moved.abs().max() <= 800 + 1e-3  # 100 ms at 8 kHz
    assert moved.abs().max() > 400 and len(set(moved.round().tolist())) > 32
    # An integer shift copies samples exactly: the burst keeps its energy and nothing wraps around.
    torch.testing.assert_close(out.square().sum(1), x.square().sum(1))
    edge = torch.zeros(1, SR)
    edge[0, -10:] = 1.0
    shifted = augment_waveforms(edge.expand(32, -1).clone(), cfg, SR, torch.Generator().manual_seed(1))
    assert shifted[:, :100].abs().sum() == 0


def test_speed_stretches_around_centre():
    x = _bursts(32)
    cfg = AugmentConfig(shift_ms=0, speed=(0.8, 1.25), gain_db=0.0, noise_prob=0.0)
    out = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    ratio = (out != 0).sum(1).float() / (x != 0).sum(1).float()
    assert ratio.min() >= 0.78 and ratio.max() <= 1.27 and ratio.std() > 0.05
    torch.testing.assert_close(_centroid(out), _centroid(x), atol=5.0, rtol=0)


def test_gain_range():
    x = torch.randn(256, 1000)
    cfg = AugmentConfig(shift_ms=0, gain_db=6.0, noise_prob=0.0)
    out = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    db = 20 * torch.log10(out.norm(dim=1) / x.norm(dim=1))
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 6.0 + 1e-4
    assert db.min() < -5.0 and db.max() > 5.0


@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_snr_in_range(color):
    x = _bursts(64)
    cfg = AugmentConfig(shift_ms=0, gain_db=0.0, noise_prob=1.0, snr_db=(5.0, 20.0), noise_color=color)
    out = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    noise = out - x
    snr = 10 * torch.log10(x.square().mean(1) / noise.square().mean(1))
    assert snr.min() >= 5.0 - 1e-3 and snr.max() <= 20.0 + 1e-3
    assert snr.std() > 2.0  # drawn per item, not once per batch
    assert noise[:, : SR // 4].abs().mean() > 0  # noise covers the silent parts too


def test_pink_noise_is_lowpass():
    x = _bursts(16)
    pink = (
        augment_waveforms(
            x,
            AugmentConfig(shift_ms=0, gain_db=0, noise_prob=1.0, noise_color="pink"),
            SR,
            torch.Generator().manual_seed(0),
        )
        - x
    )
    spec = torch.fft.rfft(pink, dim=1).abs().square().mean(0)
    n = len(spec)
    assert spec[1 : n // 10].mean() > 5 * spec[n // 2 :].mean()


def test_tilt_changes_spectral_slope_both_ways():
    """White noise through the random first-order filter: high/low band power ratio spreads to both sides of 1."""
    x = torch.randn(64, 4096)
    out = augment_waveforms(x, dataclasses.replace(OFF, tilt=0.6), SR, torch.Generator().manual_seed(0))
    spec = torch.fft.rfft(out, dim=1).abs().square()
    n = spec.shape[1]
    ratio_db = 10 * torch.log10(spec[:, -n // 8 :].mean(1) / spec[:, 1 : n // 8].mean(1))
    assert ratio_db.min() < -6 and ratio_db.max() > 6
    assert torch.equal(augment_waveforms(x, OFF, SR), x)


def test_noise_probability():
    x = torch.randn(2000, 100)
    cfg = AugmentConfig(shift_ms=0, gain_db=0.0, noise_prob=0.3)
    out = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    frac = (out != x).any(1).float().mean().item()
    assert 0.25 < frac < 0.35


def test_silent_clips_stay_silent():
    x = torch.zeros(4, SR)
    out = augment_waveforms(x, AugmentConfig(noise_prob=1.0, speed=(0.9, 1.1)), SR, torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shift_ms=-1),
        dict(noise_prob=1.5),
        dict(speed=(1.1, 0.9)),
        dict(snr_db=(30, 10)),
        dict(noise_color="blue"),
        dict(tilt=1.0),
        dict(tilt=-0.1),
        dict(trim=0.5),
        dict(trim=-0.1),
        dict(reverse_none=1.0),
        dict(reverse_none=-0.1),
        dict(room=1.5),
        dict(rt60=(0.5, 0.2)),
        dict(rt60=(0.0, 0.2)),
        dict(rt60=(0.2, 5.0)),
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(AudiomnistError):
        AugmentConfig(**kwargs)


def test_integer_shift_fast_path_matches_the_interpolating_warp():
    from audiomnist.augment import _shift, _warp

    x = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([-60, -49, -3, 0, 7, 49])
    torch.testing.assert_close(_shift(x, shift), _warp(x, torch.ones(6), shift.float()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_differs_between_rows_and_calls(color):
    x = torch.zeros(8, SR)
    x[:, ::100] = 1.0
    cfg = AugmentConfig(shift_ms=0, gain_db=0.0, noise_prob=1.0, snr_db=(20.0, 20.0), noise_color=color)
    gen = torch.Generator().manual_seed(0)
    a, b = augment_waveforms(x, cfg, SR, gen) - x, augment_waveforms(x, cfg, SR, gen) - x
    corr = torch.corrcoef(torch.cat([a, b]))
    off_diagonal = corr[~torch.eye(16, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.3  # no two rows share a stretch of the noise bank


def test_mixup_blends_pairs_and_returns_partner_labels():
    x = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, 5)
    y = torch.arange(8)
    mixed, partner, lam = mixup(x.clone(), y, 0.4, np.random.default_rng(0))
    assert 0 <= lam <= 1
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])
    assert sorted(partner.tolist()) == y.tolist()
    again = mixup(x.clone(), y, 0.4, np.random.default_rng(0))
    assert torch.equal(again[0], mixed) and again[2] == lam
    lams = [mixup(x, y, 0.4, np.random.default_rng(s))[2] for s in range(200)]
    assert min(lams) < 0.1 and max(lams) > 0.9  # Beta(0.4, 0.4) is U-shaped


def test_reverse_as_none_plays_the_picked_clips_backwards_as_none():
    x = torch.arange(400, dtype=torch.float32).reshape(40, 10)
    y = torch.arange(40) % 10
    out, labels = reverse_as_none(x, y, 0.5, 10, torch.Generator().manual_seed(0))
    flipped = labels == 10
    assert 5 < int(flipped.sum()) < 35
    assert torch.equal(out[flipped], x[flipped].flip(1))
    assert torch.equal(out[~flipped], x[~flipped]) and torch.equal(labels[~flipped], y[~flipped])
    again = reverse_as_none(x, y, 0.5, 10, torch.Generator().manual_seed(0))
    assert torch.equal(again[1], labels)
    same = reverse_as_none(x, y, 0.0, 10)
    assert same[0] is x and same[1] is y


def test_trim_cuts_only_the_edges_of_the_spoken_span():
    x = _bursts(64)  # each clip: a burst at samples 3000..5000, silence around it
    out = augment_waveforms(x, dataclasses.replace(OFF, trim=0.3), SR, torch.Generator().manual_seed(0))
    for before, after in zip(x, out):
        kept = after.nonzero().squeeze(1)
        assert 3000 <= kept.min() <= 3000 + 0.3 * 2000 + 1 and 5000 - 0.3 * 2000 - 1 <= kept.max() < 5000
        torch.testing.assert_close(after[kept], before[kept])  # inside the cut the clip is untouched
        assert len(kept) == kept.max() - kept.min() + 1  # one contiguous piece
    starts = torch.stack([r.nonzero().min() for r in out])
    assert len(set(starts.tolist())) > 32  # each clip draws its own cut
    assert torch.equal(
        augment_waveforms(torch.zeros(2, SR), dataclasses.replace(OFF, trim=0.3), SR), torch.zeros(2, SR)
    )


def test_vtlp_moves_a_band_by_the_warp_factor():
    from audiomnist.augment import warp_frequency
    from audiomnist.features import FeatureConfig, LogMel

    sr = 8000
    front = LogMel(FeatureConfig(normalize="none"), sr)
    t = torch.arange(sr) / sr
    x = front(torch.sin(2 * torch.pi * 1000 * t)[None])  # (1, 1, bands, frames)
    peak = int(x[0, 0].mean(1).argmax())
    for factor in (0.8, 1.2):
        y = warp_frequency(x, front.centers_hz, factor, factor)
        moved = float(front.centers_hz[int(y[0, 0].mean(1).argmax())])
        assert moved == pytest.approx(float(front.centers_hz[peak]) * factor, rel=0.08), factor
    assert warp_frequency(x, front.centers_hz, 1.0, 1.0) is x
    with pytest.raises(AudiomnistError):
        AugmentConfig(vtlp=(1.1, 0.9))


def test_room_adds_a_decaying_tail_at_the_drawn_ratio_and_keeps_the_direct_path():
    n = SR
    x = torch.zeros(64, n)
    x[:, 100] = 1.0  # one click a clip: the output is the room's impulse response itself
    cfg = dataclasses.replace(OFF, room=1.0, rt60=(0.2, 0.4))
    y = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(0))
    assert y[:, :100].abs().max() < 1e-5, "the room is causal: nothing before the click"
    assert torch.allclose(y[:, 100], torch.ones(64), atol=1e-5)
    tail = y[:, 101:].square().sum(1)
    drr_db = -10 * torch.log10(tail)
    assert drr_db.min() >= -0.01 and drr_db.max() <= 15.01 and drr_db.std() > 1
    # -60 dB at rt60: the 100-200 ms energy sits 0.1 s x 60 dB / rt60 (15-30 dB) below the 0-100 ms energy
    early, late = y[:, 101 : 101 + SR // 10].square().sum(1), y[:, 101 + SR // 10 : 101 + SR // 5].square().sum(1)
    drop = 10 * torch.log10(early / late)
    assert drop.min() > 12 and drop.max() < 33
    untouched = augment_waveforms(x, dataclasses.replace(cfg, room=0.0), SR, torch.Generator().manual_seed(0))
    assert torch.equal(untouched, x)


def test_room_probability_picks_rows():
    x = _bursts(400)
    cfg = dataclasses.replace(OFF, room=0.25)
    y = augment_waveforms(x, cfg, SR, torch.Generator().manual_seed(1))
    changed = (y != x).any(dim=1).float().mean()
    assert 0.15 < changed < 0.35
