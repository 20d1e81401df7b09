"""How often the audio gate (audiomnist.audio.audio_problem, with its pitch test) refuses speech and noise.

    python experiments/no-digit/voicing.py --data ../shared/data --negatives NEGDIR

Speech: every FSDD clip, 500 Bengali and 300 Ukrainian clips, 600 synthetic held-out digits and 300 held-out words
(NEGDIR, README.md), clean and with white noise added at 20, 10, 5 and 0 dB SNR. Noise: the noise-only clips of
NEGDIR (neg-train and neg-heldout-noise, white/pink/brown, a third with mains hum, a third with a click).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from audiomnist.audio import audio_problem, load_audio

SR = 8000
SNRS = (None, 20, 10, 5, 0)


def sample(files: list[Path], k: int) -> list[Path]:
    return files if len(files) <= k else sorted(np.random.default_rng(0).choice(files, k, replace=False))


def noise_clips(negatives: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for folder in ("neg-train", "neg-heldout-noise"):
        for row in csv.DictReader((negatives / folder / "takes.csv").open()):
            if "noise" in row["word"]:
                out.setdefault(row["word"], []).append(negatives / folder / row["file"])
    return out


def refused(clips: list[np.ndarray]) -> float:
    return float(np.mean([audio_problem(x, SR) is not None for x in clips]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd, bengali, ukrainian)")
    p.add_argument("--negatives", type=Path, required=True, help="NEGDIR (README.md)")
    args = p.parse_args(argv)
    speech = {
        "FSDD": sorted((args.data / "fsdd" / "recordings").glob("*.wav")),
        "Bengali": sample(sorted((args.data / "bengali").glob("*.flac")), 500),
        "Ukrainian": sample(sorted((args.data / "ukrainian").glob("*.flac")), 300),
        "synthetic digits": sample(sorted((args.negatives / "synth-digits-heldout").glob("*.wav")), 600),
        "synthetic words": sample(sorted((args.negatives / "neg-heldout-words").glob("*.wav")), 300),
    }
    rng = np.random.default_rng(1)
    print("| speech refused | clips | " + " | ".join("clean" if s is None else f"{s} dB" for s in SNRS) + " |")
    print("|---|---|" + "---|" * len(SNRS))
    for name, files in speech.items():
        clean = [load_audio(f, SR, None) for f in files]
        cells = []
        for snr in SNRS:
            scale = 0.0 if snr is None else 10 ** (-snr / 20)
            noisy = [x + scale * np.sqrt(np.mean(np.square(x))) * rng.standard_normal(x.size) for x in clean]
            cells.append(f"{refused(noisy):.4f}")
        print(f"| {name} | {len(files)} | " + " | ".join(cells) + " |")
    print("\n| noise refused | clips | share |\n|---|---|---|")
    for name, files in sorted(noise_clips(args.negatives).items()):
        print(f"| {name} | {len(files)} | {refused([load_audio(f, SR, None) for f in files]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
