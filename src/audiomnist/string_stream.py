"""Whole numbers from a live stream: voice-activity segments decoded by a digit-string model while they are spoken.

The stream goes through the same resampler and `stream.Segmenter` as single digits, with settings for speech that
runs on (long segments, a longer pause to end one). While a segment is open it is decoded again every `every_ms`
of audio, and a digit is emitted once its peak lies `hold_ms` before the audio heard so far (the model's lookahead
plus a margin), so it is not taken back by what follows; the rest comes when the segment closes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import soxr

from .recognizer import StringRecognizer
from .stream import Segment, Segmenter, VadConfig, read_blocks

# A number is said in one breath: pauses inside it must not end the segment, a segment holds up to 30 s, and the
# background floor must not climb onto a number said for several seconds without a pause.
# The margin keeps background after the last word: the model looks a little ahead before it emits a digit.
STRING_VAD = replace(VadConfig(), end_silence_ms=400.0, max_segment_ms=30000.0, floor_window_s=10.0, margin_ms=250.0)
EVERY_MS = 50.0  # how often an open segment is decoded again
HOLD_MS = 100.0  # a digit is final once this much audio follows its peak (benchmarks/bench_strings.py)


@dataclass(frozen=True)
class StreamDigit:
    """A digit heard in a stream: its peak (seconds from the stream's start), when it was emitted (the stream time
    of the audio heard by then), and how sure the model was."""

    digit: str
    confidence: float
    time: float
    emitted: float


class _Open:
    """Decoding state of one segment: how many of its digits have been emitted, and whether the audio gate has
    found speech in it (a segment only grows, so it is not asked again on every decode)."""

    def __init__(self) -> None:
        self.done, self.decoded_at, self.speech = 0, 0, False


def _emit(
    rec: StringRecognizer, seg: Segment, state: _Open, final: bool, hold_s: float, whole: bool
) -> list[StreamDigit]:
    t0, now = seg.start / seg.sample_rate, seg.end / seg.sample_rate
    until = np.inf if final else (now - t0) - hold_s
    heard = rec.transcribe(seg.audio, seg.sample_rate, rescore_from=state.done, rescore_until=until,
                           speech_known=state.speech, ended=final, segment=True, slow=whole)  # fmt: skip
    state.speech = state.speech or heard.reason is None
    words = heard.words
    ready = [w for w in words if w.time <= until]
    out = [StreamDigit(w.digit, w.confidence, round(t0 + w.time, 3), round(now, 3)) for w in ready[state.done :]]
    state.done = max(state.done, len(ready))
    return out


def stream_digits(
    chunks: Iterable[np.ndarray],
    recognizer: StringRecognizer,
    sample_rate: int | None = None,
    config: VadConfig = STRING_VAD,
    every_ms: float = EVERY_MS,
    hold_ms: float = HOLD_MS,
) -> Iterator[StreamDigit]:
    """Digits of a stream of mono float32 chunks at `sample_rate` (None: the model's), each as soon as it is final.
    `every_ms` inf: open segments are never decoded, each segment only once it closes (a recording heard whole)."""
    sr_model = recognizer.sample_rate
    sr = sr_model if sample_rate is None else int(sample_rate)
    seg = Segmenter(sr_model, config)
    rs = None if sr == sr_model else soxr.ResampleStream(sr, sr_model, 1, dtype="float32", quality="HQ")
    every = np.inf if np.isinf(every_ms) else round(every_ms * sr_model / 1000)
    hold = max(hold_ms / 1000, recognizer.stream_hold_seconds)  # an emb-ctc model looks further ahead
    whole = np.isinf(every)  # each segment decoded once, closed: a quick one may be slowed (recognizer.STEADY_PACE)
    state = _Open()

    def step(x: np.ndarray) -> Iterator[StreamDigit]:
        nonlocal state
        for closed in seg.feed(x):
            yield from _emit(recognizer, closed, state, True, hold, whole)
            state = _Open()
        partial = seg.pending()
        if partial is None:
            state = _Open()
        elif len(partial.audio) - state.decoded_at >= every:
            state.decoded_at = len(partial.audio)
            yield from _emit(recognizer, partial, state, False, hold, whole)

    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float32)
        x = x.mean(axis=1) if x.ndim == 2 else x
        yield from step(rs.resample_chunk(np.ascontiguousarray(x), last=False) if rs is not None else x)
    if rs is not None:
        yield from step(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    for closed in seg.flush():
        yield from _emit(recognizer, closed, state, True, hold, whole)


def stream_file(path: str | os.PathLike, recognizer: StringRecognizer, block_ms: float = 100.0, **kw):
    """A recording through exactly the live path: read in block_ms blocks at its own rate, then `stream_digits`."""
    sr, blocks = read_blocks(path, block_ms)
    return stream_digits(blocks, recognizer, sr, **kw)
