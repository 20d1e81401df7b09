"""The held-out speaker's ten-digit strings through the codecs a phone or a messaging app puts between a voice and a
file, heard by a fold's string model alone at the package's defaults (slowed when quick): digit error rate and exact
match per codec. Each string is written as a WAV, encoded and decoded by sox or ffmpeg, and read back through
audio.load_audio (the package's own decoding, ffmpeg included).

    python phone_codecs.py RUN [RUN ...] --data FSDD [--strings 200]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from fold import held_out, test_strings

from audiomnist import ctc
from audiomnist.audio import load_audio
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import load_clips

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i"]
# name -> (file suffix, the command that encodes {src} into {dst})
CODECS = {
    "as recorded (WAV)": (".wav", None),
    "GSM 06.10, 13 kbit/s (sox)": (".gsm", ["sox", "{src}", "-r", "8000", "-c", "1", "{dst}"]),
    "telephone band + mu-law (sox)": (".wav", ["sox", "{src}", "-e", "u-law", "{dst}", "sinc", "300-3400"]),
    "G.726, 16 kbit/s": (".wav", [*FF, "{src}", "-ar", "8000", "-c:a", "g726", "-b:a", "16k", "{dst}"]),
    "AAC 24 kbit/s (m4a)": (".m4a", [*FF, "{src}", "-c:a", "aac", "-b:a", "24k", "{dst}"]),
    "MP3 16 kbit/s": (".mp3", [*FF, "{src}", "-c:a", "libmp3lame", "-b:a", "16k", "{dst}"]),
    "Opus 8 kbit/s": (".ogg", [*FF, "{src}", "-c:a", "libopus", "-b:a", "8k", "{dst}"]),
}


def through(codec: str, x: np.ndarray, sr: int, tmp: Path) -> np.ndarray:
    suffix, cmd = CODECS[codec]
    src, dst = tmp / "in.wav", tmp / f"out{suffix}"
    sf.write(src, x, sr, subtype="PCM_16")
    if cmd is None:
        return load_audio(src, sr)
    subprocess.run([c.format(src=src, dst=dst) for c in cmd], check=True, capture_output=True)
    return load_audio(dst, sr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="string runs with one held-out FSDD speaker each")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--strings", type=int, default=200, help="test strings per fold")
    args = ap.parse_args()
    print("| codec | " + " | ".join(held_out(r)[0] for r in args.runs) + " | mean |")
    print("|---" * (len(args.runs) + 2) + "|")
    cells: dict[str, list[tuple[float, float]]] = {c: [] for c in CODECS}
    for run in args.runs:
        rec = StringRecognizer.load(str(run), backend="torch", threads=1, rescore=None)
        speaker, seed, sr = held_out(run)
        items = test_strings(load_clips([args.data], sr, progress=False), sr, speaker, seed, args.strings)
        with tempfile.TemporaryDirectory() as tmp:
            for codec in CODECS:
                hyp = [rec.transcribe(through(codec, x, sr, Path(tmp)), sr).digits for x, _ in items]
                m = ctc.string_metrics([d for _, d in items], hyp)
                cells[codec].append((100 * m["digit_error_rate"], 100 * m["exact_match"]))
    for codec, row in cells.items():
        der, exact = np.mean(row, axis=0)
        print(f"| {codec} | " + " | ".join(f"{d:.1f} / {e:.0f}" for d, e in row) + f" | {der:.2f} / {exact:.1f} |")


if __name__ == "__main__":
    main()
