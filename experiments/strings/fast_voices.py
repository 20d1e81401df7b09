"""Digit strings said fast the natural way: synthetic voices no string model trained on (new draws of the engines'
voices, rooms, channels and noise; seed apart from the corpora's 0) say 10-digit numbers whole at their own rate
and --speed times faster. The engines speed up as speech does (pitch kept, words shortened and run together), not as
a resampled tape does (experiments/strings/README.md, "Natural pace").

    python experiments/strings/fast_voices.py MODEL [MODEL ...] --cache /tmp/fast.npz [--voices 60 --strings 5]

MODEL: a string run or a shipped model's name, the string model alone (--rescore default: rescored as `listen
--input` does). The clips are made once into --cache (npz) and reused, so every model hears the same audio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audiomnist import ctc, synth
from audiomnist.recognizer import StringRecognizer

SAMPLE_RATE = 8000  # the encoder string model's; the log-mel one resamples on its own
SEED = 101  # the voices' draws: the training corpora use seed 0 (pace.py's rule was tuned on a set drawn with 202)


def make_clips(voices: int, strings: int, speeds: list[float], seed: int = SEED) -> dict[str, np.ndarray]:
    """Each voice says `strings` numbers at each speed: same words, same room and noise draws, only the rate moves."""
    recipes = synth.plan(synth.english_voices(), voices, seed)
    audio, digits, speed_of, voice_of = [], [], [], []
    for i, recipe in enumerate(tqdm(recipes, desc="voices")):
        params = [synth.string_params(recipe, np.random.default_rng([seed, i, k]), (10, 10)) for k in range(strings)]
        for s in speeds:
            reqs = [synth.engine_request(recipe, rate * s, pitch) for _, _, rate, pitch in params]
            with tempfile.TemporaryDirectory() as tmp:
                got = synth.synthesize_many([p[1] for p in params], recipe.voice, [r[0] for r in reqs],
                                            [r[1] for r in reqs], Path(tmp))  # fmt: skip
            for k, g in enumerate(got):
                if isinstance(g, Exception):
                    print(f"{recipe.speaker} {params[k][1]!r}: {g}")
                    continue
                audio.append(synth.finish_take(*g, SAMPLE_RATE, recipe, np.random.default_rng([seed, i, k, 1])))
                digits.append(params[k][0])
                speed_of.append(s)
                voice_of.append(i)
    lengths = np.array([len(a) for a in audio])
    return {"audio": np.concatenate(audio), "lengths": lengths, "digits": np.array(digits),
            "speed": np.array(speed_of), "voice": np.array(voice_of)}  # fmt: skip


def read_clips(cache: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """--cache's arrays (digits, speed, voice, ...) and its clips, one waveform each."""
    data = dict(np.load(cache))
    return data, np.split(data["audio"], np.cumsum(data["lengths"])[:-1])


def scores(hyp: list[str], digits: np.ndarray, groups: np.ndarray, keys: list) -> list[str]:
    """ "DER / exact" (%) of the hypotheses in each group of `keys` (groups[i]: clip i's group)."""
    cells = []
    for key in keys:
        idx = np.flatnonzero(groups == key)
        m = ctc.string_metrics([str(digits[i]) for i in idx], [hyp[i] for i in idx])
        cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f}")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="string runs or shipped model names (the string model alone)")
    ap.add_argument("--cache", type=Path, required=True, help="npz of the clips: made when missing, else read")
    ap.add_argument("--voices", type=int, default=60, help="synthetic voices (engines take turns)")
    ap.add_argument("--strings", type=int, default=5, help="10-digit numbers per voice and speed")
    ap.add_argument("--speed", type=float, nargs="+", default=[1.0, 1.3, 1.6], help="rate factors on each voice's own")
    ap.add_argument("--seed", type=int, default=SEED, help="the voices' draws (another seed: another held-out set)")
    ap.add_argument("--rescore", default=None, help="single-digit model that rescores each digit (default: none)")
    args = ap.parse_args()
    if not args.cache.exists():
        data = make_clips(args.voices, args.strings, args.speed, args.seed)
        np.savez(args.cache, **data)
    data, waves = read_clips(args.cache)
    speeds = sorted(set(data["speed"].tolist()))
    secs = [data["lengths"][data["speed"] == s].mean() / SAMPLE_RATE for s in speeds]
    print("| model | " + " | ".join(f"speed {s:g} ({t:.2f} s / number)" for s, t in zip(speeds, secs)) + " |")
    for name in args.models:
        rec = StringRecognizer.load(name, backend="torch", threads=1, rescore=args.rescore)
        hyp = [rec.transcribe(x, SAMPLE_RATE).digits for x in waves]
        cells = scores(hyp, data["digits"], data["speed"], speeds)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
