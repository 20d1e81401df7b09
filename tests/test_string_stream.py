"""Streaming numbers: digits emitted once each, in order, only when final, whatever the block size; listen wiring."""

import numpy as np
import pytest
import soundfile as sf

from audiomnist import cli
from audiomnist.recognizer import Digit, Transcript
from audiomnist.string_stream import stream_digits, stream_file

from conftest import SR, tone_digit


class Clock:
    """A stand-in recogniser: one digit per 0.4 s of audio, peaking 0.3 s into each 0.4 s."""

    sample_rate = SR
    stream_hold_seconds = 0.0  # no lookahead of its own: the stream's hold_ms rules

    def __init__(self):
        self.calls, self.asked, self.known, self.ended, self.slowed = 0, [], [], [], []

    def transcribe(self, wave, sample_rate, rescore_from=0, rescore_until=np.inf, speech_known=False, ended=True,
                   segment=False, slow=True):  # fmt: skip
        assert segment  # a stream's segments start with the detector's own background: no lead is added
        self.calls += 1
        self.slowed.append(slow)
        self.asked.append((rescore_from, rescore_until, len(wave) / sample_rate))
        self.known.append(speech_known)
        self.ended.append(ended)
        n = int(len(wave) / sample_rate / 0.4 + 0.25)  # a digit counts once 0.3 s of it is heard
        return Transcript(str(n), [Digit(str(i % 10), 0.9, round(0.4 * i + 0.3, 3)) for i in range(n)])


def speech_stream(seconds: float) -> np.ndarray:
    """0.5 s of quiet, `seconds` of tone 'speech' (syllables every 0.2 s, never silent), 1 s of quiet."""
    rng = np.random.default_rng(0)
    quiet = lambda s: rng.normal(0, 1e-4, int(s * SR)).astype(np.float32)  # noqa: E731
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.2 + 0.8 * np.abs(np.sin(np.pi * t / 0.2))
    speech = (0.3 * envelope * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.concatenate([quiet(0.5), speech, quiet(1.0)])


def blocks(x: np.ndarray, size: int):
    return (x[i : i + size] for i in range(0, len(x), size))


@pytest.mark.parametrize("block", [80, 800, 1777])
def test_digits_come_once_in_order_and_only_when_final(block):
    rec = Clock()
    out = list(stream_digits(blocks(speech_stream(4.0), block), rec, SR, hold_ms=200))
    digits = [d.digit for d in out]
    assert digits == [str(i % 10) for i in range(len(digits))] and len(digits) >= 9
    assert all(d.emitted >= d.time for d in out)
    partial = [d for d in out if d.emitted < 0.5 + 4.0]  # emitted while the speech was still going on
    assert len(partial) >= 7 and all(d.emitted - d.time >= 0.2 - 1e-6 for d in partial)
    assert rec.calls >= 10  # decoded again as the segment grew


def test_only_digits_not_yet_printed_and_already_final_are_rescored():
    rec, printed = Clock(), 0
    for _ in stream_digits(blocks(speech_stream(3.0), 400), rec, SR, hold_ms=200):
        start, _, _ = rec.asked[-1]
        assert start == printed  # one segment: what it printed before is not rescored again
        printed += 1
    partial = [(s, u, h) for s, u, h in rec.asked if np.isfinite(u)]
    assert partial and all(u == pytest.approx(h - 0.2) for _, u, h in partial)
    assert rec.asked[-1][1] == np.inf  # the closing decode rescores whatever is left
    assert rec.ended[-1] and not any(rec.ended[:-1])  # only the closed segment is a whole utterance (silence after)
    assert rec.known[0] is False and all(rec.known[1:])  # the gate found speech once; it is not asked again
    assert not any(rec.slowed)  # live: the closing decode hears what the printed digits were heard from


def test_block_size_does_not_change_the_digits():
    got = [[d.digit for d in stream_digits(blocks(speech_stream(3.0), b), Clock(), SR)] for b in (80, 1600)]
    assert got[0] == got[1]


def test_a_recording_heard_whole_decodes_each_segment_once_when_it_closes():
    rec = Clock()
    out = list(stream_digits(blocks(speech_stream(3.0), 400), rec, SR, every_ms=np.inf))
    assert rec.calls == 1 and rec.ended == [True] and rec.asked[0][:2] == (0, np.inf)
    assert rec.slowed == [True]  # nothing printed before it: a quick number may be heard slowed
    assert [d.digit for d in out] == [d.digit for d in stream_digits(blocks(speech_stream(3.0), 400), Clock(), SR)]


def test_silence_gives_nothing():
    quiet = np.random.default_rng(1).normal(0, 1e-4, 3 * SR).astype(np.float32)
    assert list(stream_digits(blocks(quiet, 800), Clock(), SR)) == []


def test_listen_input_uses_a_string_model(string_model, tmp_path, capsys):
    path = tmp_path / "number.wav"
    x = np.concatenate([np.zeros(SR // 2), *[tone_digit(d, 1, d, lead_s=(0, 0)) for d in (4, 1, 5)], np.zeros(SR)])
    sf.write(path, x.astype(np.float32), SR)
    assert cli.main(["listen", "--input", str(path), "--model", str(string_model[1])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert set(lines[-1]) <= set("0123456789")  # the number (untrained model: any digits, maybe none)
    assert all(" s  " in line for line in lines[:-1])
    from audiomnist.recognizer import StringRecognizer

    rec = StringRecognizer.load(string_model[1])
    assert lines[-1] == "".join(d.digit for d in stream_file(path, rec, every_ms=np.inf))  # segments decoded whole
