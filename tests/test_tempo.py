"""change_tempo: WSOLA keeps the pitch and the level, scales the duration, and keeps what comes when in order."""

import numpy as np
import pytest

from audiomnist.tempo import change_tempo

SR = 8000


def tone(hz: float, seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[spectrum.argmax()])


@pytest.mark.parametrize("factor", [0.6, 0.8, 1.3, 2.0, 3.0])
def test_the_duration_changes_and_the_pitch_and_level_do_not(factor):
    x = tone(150, 2.0)
    y = change_tempo(x, SR, factor)
    assert y.dtype == np.float32 and len(y) == round(len(x) / factor)
    middle = y[SR // 4 : -SR // 4]
    assert peak_hz(middle) == pytest.approx(150, abs=3)
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.05)


def test_what_is_said_keeps_its_order_and_scales_its_time():
    x = np.concatenate([tone(200, 1.0), tone(600, 1.0)])
    y = change_tempo(x, SR, 0.8)  # the switch at 1 s moves to 1.25 s
    before, after = y[int(1.05 * SR) : int(1.2 * SR)], y[int(1.3 * SR) : int(1.45 * SR)]
    assert peak_hz(before) == pytest.approx(200, abs=30) and peak_hz(after) == pytest.approx(600, abs=30)


def test_identity_empty_and_bad_factors():
    x = tone(150, 0.5)
    assert change_tempo(x, SR, 1.0) is not None and np.array_equal(change_tempo(x, SR, 1.0), x)
    assert len(change_tempo(np.zeros(0, np.float32), SR, 0.8)) == 0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            change_tempo(x, SR, bad)
