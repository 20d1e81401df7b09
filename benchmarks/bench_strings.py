"""Digit-string model speed and streaming delay: real-time factor on one thread, and how long after a digit's word
ends it is printed by the streaming path (`audiomnist listen --continuous`).

    python benchmarks/bench_strings.py [--model strings|RUN_DIR|FILE.onnx] [--data FSDD] [--speaker nicolas] [--n 40]
                                       [--rescore-model default | --no-rescore] [--stretch 1.5]

Strings are 10 digits said without pauses (strings.TEST_ASSEMBLY) by --speaker from its isolated FSDD clips, so
where each word ends is known. The stream is fed in --block-ms blocks as a microphone would deliver them; a digit's
delay is (stream time when it was emitted + the compute time spent up to then) - (end of its word), over digits of
strings decoded exactly (so each emitted digit maps to its word). Real-time factor: transcribe() time / audio time.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from audiomnist.recognizer import SHIPPED_LIVE, StringRecognizer, add_rescore_arguments, rescore_spec
from audiomnist.string_stream import EVERY_MS, HOLD_MS, stream_digits
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, load_clips

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("FSDD") or REPO.parent / "shared" / "data" / "fsdd" / "recordings")


def timed_blocks(x: np.ndarray, size: int, spent: list[float]):
    """Blocks of x; `spent` collects the wall time the consumer takes between blocks (decoding)."""
    for i in range(0, len(x), size):
        t = time.perf_counter()
        yield x[i : i + size]
        spent.append(time.perf_counter() - t)


def delays(rec, x: np.ndarray, digits: str, ends: np.ndarray, block: int, **kw) -> list[float] | None:
    sr, spent, out = rec.sample_rate, [], []
    emitted = []
    for d in stream_digits(timed_blocks(x, block, spent), rec, sr, **kw):
        emitted.append((d.digit, d.emitted + sum(spent)))
    if "".join(e[0] for e in emitted) != digits:
        return None
    for (_, at), end in zip(emitted, ends):
        out.append(at - end / sr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=SHIPPED_LIVE, help=f"string model (default: the live stream's, {SHIPPED_LIVE!r})")
    p.add_argument("--data", default=str(FSDD), help="folder of isolated clips (default: FSDD)")
    p.add_argument("--speaker", default="nicolas", help="whose clips the strings are made of")
    p.add_argument("--n", type=int, default=40, help="strings")
    p.add_argument("--block-ms", type=float, default=20.0, help="microphone block (ms)")
    p.add_argument("--hold-ms", type=float, default=HOLD_MS, help=f"string_stream hold (default {HOLD_MS:g})")
    p.add_argument("--every-ms", type=float, default=EVERY_MS, help=f"decode interval (default {EVERY_MS:g})")
    p.add_argument("--stretch", type=float, default=1.0,
                   help="words said this many times as fast, pitch kept: a quick number, which a whole utterance "
                   "decodes again slowed (ctc.STEADY_PACE)")  # fmt: skip
    add_rescore_arguments(p)
    args = p.parse_args()
    rec = StringRecognizer.load(args.model, threads=1, rescore=rescore_spec(args))
    clips = load_clips([args.data], rec.sample_rate, progress=False)
    maker = StringMaker(clips, rec.sample_rate, replace(TEST_ASSEMBLY, stretch=(args.stretch, args.stretch)))
    rng = np.random.default_rng(0)
    items = [maker.make_timed(rng, args.speaker, 10) for _ in range(args.n)]
    audio = sum(len(x) for x, _, _ in items) / rec.sample_rate
    rec.transcribe(items[0][0], rec.sample_rate)  # warm up
    t = time.perf_counter()
    tempos = [rec.transcribe(x, rec.sample_rate).tempo for x, _, _ in items]
    rtf = (time.perf_counter() - t) / audio
    block = round(args.block_ms * rec.sample_rate / 1000)
    t = time.perf_counter()
    got = [delays(rec, x, d, e, block, hold_ms=args.hold_ms, every_ms=args.every_ms) for x, d, e in items]
    stream_rtf = (time.perf_counter() - t) / audio
    lag = np.concatenate([g for g in got if g is not None] or [np.zeros(0)])
    print(f"hold {args.hold_ms:g} ms, decoded every {args.every_ms:g} ms; exact whole-utterance strings: "
          f"{sum(rec.transcribe(x, rec.sample_rate).digits == d for x, d, _ in items)} of {args.n}")  # fmt: skip
    print(f"rescored by: {rec.rescorer_name or 'nothing'}")
    print(f"model {rec.path} ({rec.backend}), {args.n} strings of 10 digits by {args.speaker}, {audio:.1f} s of audio")
    print(f"real-time factor, one thread: whole utterance {rtf:.4f}, streaming {stream_rtf:.4f}")
    slowed = [t for t in tempos if t < 1]
    print(f"whole utterances heard again slowed: {len(slowed)} of {args.n}"
          + (f" (tempo {min(slowed):.2f}-{max(slowed):.2f})" if slowed else ""))  # fmt: skip
    if len(lag):
        q = np.percentile(lag, [50, 90, 99])
        print(f"delay from a word's end to its digit on screen ({len(lag)} digits of {sum(g is not None for g in got)} "
              f"exact strings): median {q[0] * 1000:.0f} ms, p90 {q[1] * 1000:.0f} ms, p99 {q[2] * 1000:.0f} ms, "
              f"max {lag.max() * 1000:.0f} ms")  # fmt: skip
    else:
        print("no string was decoded exactly: no delay to report")


if __name__ == "__main__":
    main()
