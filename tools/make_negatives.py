"""Make "not a digit" examples for `audiomnist train --negative PATH`: English non-digit words in many synthetic voices
(the speakers of `audiomnist data synth`: engine voice, vocal tract, room, noise, channel), and noise-only clips.

    python tools/make_negatives.py OUT --words experiments/no-digit/words-train.txt [--voices 60] [--seed 0]
    python tools/make_negatives.py OUT --noise 300

Files are named `{n}_{speaker}_{take}.wav` (FSDD form) only so `data scan` catalogs them: n is the word's index mod
10, never a digit that was said; takes.csv names the word. Every clip under a --negative folder gets the class "none"
whatever its name says. Use other --seed values (and other words) for held-out voices: speaker ids carry --prefix.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from audiomnist.synth import (
    NOISE_COLOURS,
    coloured_noise,
    engine_request,
    english_voices,
    finish_take,
    parse_perturbations,
    plan,
    synthesize_many,
    write_wav,
)

NOISE_SECONDS = (0.3, 1.5)
NOISE_PEAK_DB = (-30.0, -1.0)  # loud enough to pass the "no speech" gate: the network has to say "none" itself


def read_words(path: Path) -> list[str]:
    words = [w.strip().lower() for w in path.read_text().splitlines() if w.strip() and not w.startswith("#")]
    return list(dict.fromkeys(words))


def render_words(
    out: Path, words: list[str], voices: int, per_voice: int, seed: int, prefix: str, sr: int, first: int = 0,
    off: frozenset[str] = frozenset(),
) -> list[dict]:  # fmt: skip
    """`voices` synthetic speakers (from the `first`-th of the plan on), each saying `per_voice` words drawn from
    `words` (one take each). With `data synth`'s seed (and --no-perturb, `off`) the voices are that corpus's
    speakers, voice for voice."""
    recipes = plan(english_voices(), first + voices, seed, off)[first:]
    rows = []
    for k, recipe in enumerate(recipes, start=first):
        rng = np.random.default_rng([seed, k])
        picked = [words[i] for i in rng.choice(len(words), min(per_voice, len(words)), replace=False)]
        speaker = f"{prefix}{recipe.speaker}"
        asks = [engine_request(recipe, recipe.rate, recipe.pitch) for _ in picked]
        with tempfile.TemporaryDirectory(prefix="negatives-") as tmp:
            waves = synthesize_many(picked, recipe.voice, [a[0] for a in asks], [a[1] for a in asks], Path(tmp))
        for take, (word, got) in enumerate(zip(picked, waves)):
            if isinstance(got, Exception):
                print(f"skipped {speaker} {word!r}: {got}", file=sys.stderr)
                continue
            name = f"{words.index(word) % 10}_{speaker}_{take}.wav"
            write_wav(out / name, finish_take(*got, sr, recipe, rng), sr)
            rows.append({"file": name, "speaker": speaker, "word": word, "voice": recipe.voice.label})
        print(f"{k + 1 - first}/{len(recipes)} {speaker}", flush=True)
    return rows


def render_noise(out: Path, n: int, seed: int, prefix: str, sr: int, per_speaker: int = 10) -> list[dict]:
    """`n` clips of coloured noise (white to brown), some with a click or hum; a "speaker" is a block of clips."""
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 99])
        colour = sorted(NOISE_COLOURS)[i % len(NOISE_COLOURS)]
        x = coloured_noise(int(rng.uniform(*NOISE_SECONDS) * sr), NOISE_COLOURS[colour], rng)
        extra = (i // len(NOISE_COLOURS)) % 3  # independent of the colour: every colour gets each
        if extra == 1:  # mains hum
            t = np.arange(len(x)) / sr
            x = x + 3 * np.sin(2 * np.pi * rng.choice([50, 60]) * t)
        if extra == 2:  # a click
            at = int(rng.integers(len(x)))
            x[at : at + sr // 200] += 20 * rng.standard_normal(len(x[at : at + sr // 200]))
        x = x * (10 ** (rng.uniform(*NOISE_PEAK_DB) / 20) / max(float(np.abs(x).max()), 1e-9))
        speaker = f"{prefix}noise-{i // per_speaker:03d}"
        name = f"{i % 10}_{speaker}_{i}.wav"
        write_wav(out / name, x.astype(np.float32), sr)
        word = f"<{colour} noise{('', ' + hum', ' + click')[extra]}>"
        rows.append({"file": name, "speaker": speaker, "word": word, "voice": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--words", type=Path, help="word list, one a line (# comments)")
    p.add_argument("--voices", type=int, default=60, help="synthetic speakers (default 60)")
    p.add_argument(
        "--first",
        type=int,
        default=0,
        help="skip the plan's first N voices (default 0): with the same --seed as `data synth`, voices "
        "FIRST..FIRST+VOICES-1 are that corpus's speakers, so a voice split can match the digits'",
    )
    p.add_argument("--per-voice", type=int, default=20, help="words each speaker says (default 20)")
    p.add_argument("--noise", type=int, default=0, help="noise-only clips to add (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix", default="neg-", help="speaker id prefix (default neg-)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--no-perturb", type=parse_perturbations, default=frozenset(), metavar="LIST",
                   help="perturbations left out of every voice, as data synth --no-perturb (default none)")  # fmt: skip
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.words:
        words = read_words(args.words)
        rows += render_words(
            args.out, words, args.voices, args.per_voice, args.seed, args.prefix, args.sample_rate, args.first,
            args.no_perturb,
        )  # fmt: skip
    if args.noise:
        rows += render_noise(args.out, args.noise, args.seed, args.prefix, args.sample_rate)
    with open(args.out / "takes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "speaker", "word", "voice"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
