"""Speech played slower or faster with its pitch kept: WSOLA (waveform-similarity overlap-add; Verhelst and
Roelands, 1993), in numpy.

    y = change_tempo(x, 8000, 0.8)   # 1.25 x as long, same voice

The recogniser of whole recordings hears a number slowed down, because numbers read at a quick pace lose digits
that the same number slowed does not (experiments/strings/README.md, "Slowed down"). WSOLA copies stretches of the
recording itself, each placed where it continues the previous one most smoothly, so the voice keeps its pitch
and formants and gains no phase-vocoder smear. Written here because the libraries that do it (sox, rubberband,
librosa's phase vocoder) are a system binary, a C library, or a heavy import with audible smear on speech, and
the package's inference needs only numpy.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.03  # three pitch periods of a low voice: long enough to keep a period whole, short enough for phones
SEARCH_S = 0.01  # how far a frame may move to line up with the last: a low voice's period (100 Hz)


def change_tempo(x: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """`x` said `factor` times as fast (0.8: 1.25 x as long), pitch kept; float32, len(x) / factor samples.

    Sums and products run in float64 and each output sample is stored as float32 after each addition, as the
    exported web page's copy (web/offline.js, changeTempo) does, so both hear the same samples."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"tempo factor must be a positive number, got {factor}")
    x = np.asarray(x, dtype=np.float32)
    if factor == 1 or len(x) == 0:
        return x
    n = max(2, int(FRAME_S * sample_rate) // 2 * 2)
    hop, search = n // 2, max(1, int(SEARCH_S * sample_rate))
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32).astype(np.float64)  # periodic Hann
    out_len = int(np.floor(len(x) / factor + 0.5))
    frames = out_len // hop + 2
    # Silence around the input so every frame and every search stays inside it.
    base = search + hop
    pad = np.zeros(base + len(x) + n + 2 * search + 2 * hop)
    pad[base : base + len(x)] = x
    y = np.zeros(frames * hop + n, np.float32)
    prev = -hop  # where the previous frame started, in x's samples
    for k in range(frames):
        nominal = min(max(int(np.floor((k - 1) * hop * factor + 0.5)), -base), len(x) + hop)  # output (k - 1) x hop
        if k == 0:
            start = nominal
        else:
            follow = pad[base + prev + hop : base + prev + hop + n]  # what would continue the previous frame
            lo = max(nominal - search, -base)
            region = pad[base + lo : base + lo + n + 2 * search]
            start = lo + int(np.argmax(np.correlate(region, follow, "valid")))  # the first of equal best
        seg = slice(k * hop, k * hop + n)
        y[seg] = (y[seg].astype(np.float64) + window * pad[base + start : base + start + n]).astype(np.float32)
        prev = start
    return y[hop : hop + out_len]
