"""Phone numbers as people read them: digits in groups (3-3-4) with pauses between the groups and quiet before and
after, heard through the recogniser directly and through `listen --input`'s path (a file at 44.1 kHz, the voice
detector's segments, each decoded whole). Beside them, the same digits said as the test strings say them (no pauses,
200 ms of background): does the way a real recording is laid out cost digits? (experiments/strings/README.md)

    python experiments/strings/phone.py STRING_RUN DIGIT_RUN --data ../shared/data/fsdd/recordings [--strings 100]

The held-out speaker is the string run's; DIGIT_RUN rescoring as `StringRecognizer` does ("none": the string model
alone). Every layout uses the same digits and the same takes of them.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from fold import add_fold_arguments, held_out, recognizer

from audiomnist import ctc
from audiomnist.audio import resample
from audiomnist.string_stream import stream_file
from audiomnist.strings import TEST_ASSEMBLY, StringMaker, _join, _noise, load_clips

FILE_RATE = 44100  # what a phone or laptop recorder writes


@dataclass(frozen=True)
class Layout:
    name: str
    group_pause_s: tuple[float, float]  # between groups 3-3-4 (0, 0: said straight through)
    edge_s: tuple[float, float]  # quiet before and after
    snr_db: float  # room noise below the speech
    peak_dbfs: float  # the recording's level


LAYOUTS = [
    Layout("test strings (no pauses, 0.2 s edges)", (0.0, 0.0), (0.2, 0.2), 30.0, -6.0),
    Layout("3-3-4, pauses 0.25-0.9 s, edges 0.3-1.5 s", (0.25, 0.9), (0.3, 1.5), 30.0, -6.0),
    Layout("3-3-4 as above, 15 dB noise, peak -26 dBFS", (0.25, 0.9), (0.3, 1.5), 15.0, -26.0),
]


def lay_out(words: list[np.ndarray], sr: int, lay: Layout, rng: np.random.Generator) -> np.ndarray:
    """One recording of the words (one speaker's clips) in `lay`'s layout; the rng draws gaps, edges and noise."""
    gaps = [rng.uniform(*TEST_ASSEMBLY.gap_ms) / 1000 for _ in words[1:]]
    for i in (2, 5):  # after the 3rd and 6th digit
        if lay.group_pause_s[1] > 0:
            gaps[i] = rng.uniform(*lay.group_pause_s)
    speech = _join([w * np.float32(10 ** (rng.uniform(-3, 3) / 20)) for w in words], [int(g * sr) for g in gaps])
    lead, tail = (np.zeros(int(rng.uniform(*lay.edge_s) * sr), np.float32) for _ in range(2))
    x = np.concatenate([lead, speech, tail])
    rms = math.sqrt(float(np.mean(speech.astype(np.float64) ** 2)) + 1e-12)
    x += _noise(len(x), rng) * np.float32(rms * 10 ** (-lay.snr_db / 20))
    return x * np.float32(10 ** (lay.peak_dbfs / 20) / (np.abs(x).max() + 1e-9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_arguments(ap)
    ap.add_argument("--strings", type=int, default=100, help="10-digit numbers per layout")
    args = ap.parse_args()
    speaker, seed, sr = held_out(args.string_run)
    maker = StringMaker(load_clips([args.data], sr, progress=False), sr, TEST_ASSEMBLY)
    rec = recognizer(args.string_run, args.digit_run)  # DIGIT_RUN "none": the string model alone
    rng = np.random.default_rng([seed, 0, 11])
    takes = maker.table[speaker]
    numbers = []
    for _ in range(args.strings):
        digits = "".join(str(d) for d in rng.integers(0, 10, 10))
        numbers.append((digits, [maker.clips.audio[takes[d][rng.integers(len(takes[d]))]] for d in digits]))
    print(f"| {speaker}, {args.strings} numbers | direct: DER / exact | `listen --input` path: DER / exact |")
    with tempfile.TemporaryDirectory() as tmp:
        for k, lay in enumerate(LAYOUTS):
            lay_rng = np.random.default_rng([seed, 1, k])
            waves = [lay_out(words, sr, lay, lay_rng) for _, words in numbers]
            refs = [d for d, _ in numbers]
            direct = ctc.string_metrics(refs, [rec.transcribe(w, sr).digits for w in waves])
            heard = []
            for i, w in enumerate(waves):
                path = Path(tmp) / f"{k}-{i}.wav"
                sf.write(path, resample(w, sr, FILE_RATE, "HQ"), FILE_RATE, subtype="PCM_16")
                heard.append("".join(d.digit for d in stream_file(path, rec, every_ms=math.inf)))
            via = ctc.string_metrics(refs, heard)
            print(f"| {lay.name} | {direct['digit_error_rate']:.3f} / {direct['exact_match']:.2f} "
                  f"| {via['digit_error_rate']:.3f} / {via['exact_match']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
