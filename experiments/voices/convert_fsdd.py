"""New voices from FSDD's real speakers (experiments/voices/README.md, "Converted FSDD voices"): each source
speaker's clips through Praat's "Change gender" (formant shift, new pitch median and range, duration), then the
`data synth` channel, room and noise of a voice of its own. One folder per source speaker, so a leave-one-out fold
can leave out every voice made from its held-out speaker.

    pip install praat-parselmouth        # Praat as a library; not a dependency of the package
    python experiments/voices/convert_fsdd.py ../shared/data/fsdd/recordings OUT --voices 8 --seed 0

OUT/<speaker>/{digit}_<speaker>-vc<k>_{take}.wav, 8 kHz like FSDD; each voice says a random half of the takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from audiomnist.synth import Voice, make_recipe, perturb

try:
    import parselmouth
    from parselmouth.praat import call, run
except ImportError:
    raise SystemExit("this experiment needs Praat's Python binding: pip install praat-parselmouth") from None

PITCH_FLOOR, PITCH_CEILING = 60, 400  # Hz, Praat's analysis range for these (adult) voices
FORMANT_RANGE = (0.88, 1.2)  # formant shift ratio (vocal-tract length), as data synth's warp
PITCH_RANGE = (0.75, 1.7)  # new median pitch over the speaker's own
PITCH_SPREAD = (0.6, 1.5)  # pitch range factor (intonation)
DURATION_RANGE = (0.87, 1.15)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def median_pitch(files: list[Path]) -> float:
    f0 = []
    for f in files[::25]:
        x, sr = sf.read(f, dtype="float64")
        pitch = call(parselmouth.Sound(x, sr), "To Pitch", 0.0, PITCH_FLOOR, PITCH_CEILING)
        f0.append(call(pitch, "Get quantile", 0, 0, 0.5, "Hertz"))
    return float(np.nanmedian(f0))


def convert_speaker(files: list[Path], speaker: str, index: int, voices: int, seed: int, out: Path) -> None:
    med = median_pitch(files)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(voices):
        rng = np.random.default_rng([seed, index, k])
        name = f"{speaker}-vc{k}"
        formant, pitch = log_uniform(rng, *FORMANT_RANGE), med * log_uniform(rng, *PITCH_RANGE)
        spread, duration = float(rng.uniform(*PITCH_SPREAD)), log_uniform(rng, *DURATION_RANGE)
        room = dataclasses.replace(make_recipe(k, Voice("fsdd", speaker), rng), speaker=name, warp=1.0)
        written = 0
        for i in sorted(rng.permutation(len(files))[: len(files) // 2]):
            x, sr = sf.read(files[i], dtype="float64")
            # Praat's own generator (its overlap-add draws) seeded per clip, so the same --seed gives the same files.
            run(f"random_initializeWithSeedUnsafelyButPredictably ({seed * 10**7 + index * 10**5 + k * 10**3 + i})")
            sound = call(parselmouth.Sound(x, sr), "Change gender", PITCH_FLOOR, PITCH_CEILING, formant, pitch,
                         spread, duration)  # fmt: skip
            y = sound.values[0]
            if not np.all(np.isfinite(y)) or not np.abs(y).max() > 0:
                print(f"{files[i]}: no usable conversion for {name}, skipped")
                continue
            digit, _, take = files[i].stem.split("_")
            sf.write(out / f"{digit}_{name}_{take}.wav", perturb(y.astype(np.float32), sr, room, rng), sr)
            written += 1
        how = f"formants x {formant:.2f}, range x {spread:.2f}, duration x {duration:.2f}, {room.channel}"
        print(f"{name}: pitch {med:.0f} -> {pitch:.0f} Hz, {how}, rt60 {room.rt60} s: {written} clips", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fsdd", type=Path, help="the FSDD recordings folder")
    ap.add_argument("out", type=Path, help="output folder (one subfolder per source speaker)")
    ap.add_argument("--voices", type=int, default=8, help="new voices per source speaker")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args()
    speakers = sorted({p.name.split("_")[1] for p in args.fsdd.glob("*.wav")})
    for i, s in enumerate(speakers):
        convert_speaker(sorted(args.fsdd.glob(f"*_{s}_*.wav")), s, i, args.voices, args.seed, args.out / s)


if __name__ == "__main__":
    main()
