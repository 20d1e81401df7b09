"""Numbers read out with "double" and "triple" ("four one double five ..."), as many readers say a phone number:
synthetic voices no string model trained on (seed apart from the corpora's) say ten-digit numbers with one run of
equal digits, once read digit by digit and once with the run said "double X" / "triple X" (the same words
otherwise, the same rate, pitch, room and noise). The label is the digits either way.

    python experiments/strings/repeats.py MODEL [MODEL ...] --cache /tmp/repeats.npz [--voices 60 --strings 4]

MODEL: a string run or a shipped model's name (the string model alone unless --rescore). The clips are made once
into --cache and reused, so every model hears the same audio. Prints DER / exact for each reading.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from fast_voices import SAMPLE_RATE, SEED, read_clips, scores
from tqdm import tqdm

from audiomnist import synth
from audiomnist.recognizer import StringRecognizer

READINGS = ("digit by digit", "double / triple")


def plainly(words: str) -> str:
    """The same words with "double X" / "triple X" said as the digits themselves."""
    out, said = [], words.split()
    run = {w: n for n, w in synth.REPEAT_WORDS.items()}
    while said:
        w = said.pop(0)
        out += [said.pop(0)] * run[w] if w in run else [w]
    return " ".join(out)


def make_clips(voices: int, strings: int, seed: int = SEED) -> dict[str, np.ndarray]:
    recipes = synth.plan(synth.english_voices(), voices, seed)
    audio, digits, reading, voice_of = [], [], [], []
    for i, recipe in enumerate(tqdm(recipes, desc="voices")):
        params = []
        for k in range(strings):
            rng = np.random.default_rng([seed, i, k])
            d, words, rate, pitch = synth.string_params(recipe, rng, (10, 10))
            d, words = synth.said_with_repeats(d, words, rng)
            params += [(d, plainly(words), rate, pitch, k), (d, words, rate, pitch, k)]
        reqs = [synth.engine_request(recipe, p[2], p[3]) for p in params]
        with tempfile.TemporaryDirectory() as tmp:
            got = synth.synthesize_many([p[1] for p in params], recipe.voice, [r[0] for r in reqs],
                                        [r[1] for r in reqs], Path(tmp))  # fmt: skip
        for j, (g, p) in enumerate(zip(got, params)):
            if isinstance(g, Exception):
                print(f"{recipe.speaker} {p[1]!r}: {g}")
                continue
            audio.append(synth.finish_take(*g, SAMPLE_RATE, recipe, np.random.default_rng([seed, i, p[4], 1])))
            digits.append(p[0])
            reading.append(j % 2)
            voice_of.append(i)
    return {"audio": np.concatenate(audio), "lengths": np.array([len(a) for a in audio]),
            "digits": np.array(digits), "reading": np.array(reading), "voice": np.array(voice_of)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="string runs or shipped model names")
    ap.add_argument("--cache", type=Path, required=True, help="npz of the clips: made when missing, else read")
    ap.add_argument("--voices", type=int, default=60, help="synthetic voices (engines take turns)")
    ap.add_argument("--strings", type=int, default=4, help="numbers per voice (each said both ways)")
    ap.add_argument("--seed", type=int, default=SEED, help="the voices' draws")
    ap.add_argument("--rescore", default=None, help="single-digit model that rescores each digit (default: none)")
    args = ap.parse_args()
    if not args.cache.exists():
        np.savez(args.cache, **make_clips(args.voices, args.strings, args.seed))
    data, waves = read_clips(args.cache)
    print("| model | " + " | ".join(f"{r}: DER / exact" for r in READINGS) + " |")
    print("|---" * (len(READINGS) + 1) + "|")
    for name in args.models:
        rec = StringRecognizer.load(name, backend="torch", threads=1, rescore=args.rescore)
        hyp = [rec.transcribe(x, SAMPLE_RATE).digits for x in waves]
        cells = scores(hyp, data["digits"], data["reading"], list(range(len(READINGS))))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
