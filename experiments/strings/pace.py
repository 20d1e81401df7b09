"""How fast was the number said, and how much should it be slowed before the string model reads it? Each recording
decoded at every --factor of tempo (the package's WSOLA, pitch kept; < 1: slower), and the pace of the first,
unslowed decoding kept beside it, so that rules choosing the factor from that pace can be scored without decoding
again (experiments/strings/README.md, "Slowed down").

    python experiments/strings/pace.py MODEL --cache fast-voices.npz --out fast.json          # natural fast speech
    python experiments/strings/pace.py MODEL --cache fast-voices.npz --out sox.json --how sox --factor 1 0.8 0.65
    python experiments/strings/pace.py STRING_RUN --fold --data FSDD --out nicolas.json        # a held-out speaker
    python experiments/strings/pace.py --score fast.json nicolas.json ... --target 2.5 3 3.5   # rules, from the files
    python experiments/strings/pace.py MODEL|STRING_RUN ... --package 3.5   # the recogniser's own rule, as shipped

The string model alone (--rescore: rescored, as `listen --input` does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from fast_voices import read_clips
from fold import held_out, test_strings

from audiomnist import ctc, tempo
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import load_clips, time_stretch
from audiomnist.tempo import change_tempo

FACTORS = (1.0, 0.9, 0.8, 0.7, 0.6)
FAST_RATE = 8000  # fast_voices.py's clips


def stretch(x: np.ndarray, sr: int, factor: float, how: str) -> np.ndarray:
    """x played `factor` times as fast, pitch kept: the package's WSOLA, sox's tempo (WSOLA), or a phase vocoder."""
    if factor == 1 or how == "wsola":
        return change_tempo(x, sr, factor)
    if how == "librosa":
        return time_stretch(x, sr, factor)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.wav", Path(tmp) / "b.wav"
        sf.write(a, x, sr, subtype="FLOAT")
        subprocess.run(["sox", "-V1", str(a), str(b), "tempo", "-s", str(factor)], check=True)
        return sf.read(b, dtype="float32")[0]


def pace(words: list) -> float:
    """Digits a second between the first digit's time and the last's (0 under two digits)."""
    if len(words) < 2 or words[-1].time <= words[0].time:
        return 0.0
    return (len(words) - 1) / (words[-1].time - words[0].time)


def fast_voice_items(cache: Path) -> list[tuple[str, np.ndarray, str]]:
    data, waves = read_clips(cache)
    return [(f"synthetic x{s:g}", w, str(d)) for w, d, s in zip(waves, data["digits"], data["speed"])]


def fold_items(run: Path, data: str, sr: int, n: int, stretch: list[float]) -> list[tuple[str, np.ndarray, str]]:
    speaker, seed, _ = held_out(run)
    clips = load_clips([data], sr, progress=False)
    out = []
    for s in stretch:
        out += [(f"{speaker} x{s:g}", x, d) for x, d in test_strings(clips, sr, speaker, seed, n, stretch=(s, s))]
    return out


def decode_all(args: argparse.Namespace) -> None:
    rec = StringRecognizer.load(args.model, backend="torch", threads=1, rescore=args.rescore, pace=None)
    sr = rec.sample_rate if args.fold else FAST_RATE
    if args.fold:
        items = fold_items(Path(args.model), args.data, sr, args.strings, args.stretch)
    else:
        items = fast_voice_items(args.cache)
    rows = []
    for group, x, ref in items:
        row = {"group": group, "ref": ref, "hyp": {}}
        for f in args.factor:
            t = rec.transcribe(stretch(x, sr, f, args.how), sr)
            row["hyp"][str(f)] = t.digits
            if f == 1:
                row["pace"] = pace(t.words)
        rows.append(row)
    out = {"model": f"{args.model} ({args.how})", "factors": args.factor, "rows": rows}
    args.out.write_text(json.dumps(out))


def through_package(args: argparse.Namespace) -> None:
    """Each --package pace as the recogniser applies it (its own first decoding, a continuous factor), against
    none: the table of the README."""
    rec = StringRecognizer.load(args.model, backend="torch", threads=1, rescore=args.rescore)
    sr = rec.sample_rate if args.fold else FAST_RATE
    items = fold_items(Path(args.model), args.data, sr, args.strings, args.stretch) if args.fold \
        else fast_voice_items(args.cache)  # fmt: skip
    groups = sorted({g for g, _, _ in items}, key=lambda g: (g.split(" x")[0], float(g.split(" x")[1])))
    wsola = f"WSOLA {tempo.FRAME_S * 1000:g} / {tempo.SEARCH_S * 1000:g} ms"
    head = f"| {args.model} (rescored by {args.rescore}; {wsola}) | "
    print(head + " | ".join(groups) + " |", flush=True)
    for pace_ in [None, *args.package]:
        rec.pace = pace_
        t0 = time.perf_counter()
        heard = [(g, ref, rec.transcribe(x, sr)) for g, x, ref in items]
        rtf = (time.perf_counter() - t0) / sum(len(x) / sr for _, x, _ in items)
        cells = []
        for g in groups:
            rows = [(ref, t) for gg, ref, t in heard if gg == g]
            m = ctc.string_metrics([r for r, _ in rows], [t.digits for _, t in rows])
            slowed = np.mean([t.tempo < 1 for _, t in rows])
            cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f} ({100 * slowed:.0f} %)")
        print(f"| pace {pace_ or 'as recorded'} (real-time factor {rtf:.3f}) | " + " | ".join(cells) + " |", flush=True)


def choose(p: float, target: float, factors: list[float]) -> float:
    """The tempo factor that brings pace p nearest the target pace, never faster than as said."""
    want = 1.0 if p <= target else target / p
    return min(factors, key=lambda f: abs(f - want))


def score(files: list[Path], targets: list[float]) -> None:
    for path in files:
        d = json.loads(path.read_text())
        factors = [float(f) for f in d["factors"]]
        groups = sorted({r["group"] for r in d["rows"]})
        print(f"\n{d['model']}\n| rule | " + " | ".join(groups) + " |")
        rules = [(f"always x{f:g}", lambda r, f=f: f) for f in factors]
        rules += [(f"to {t:g} digits/s", lambda r, t=t, fs=factors: choose(r["pace"], t, fs)) for t in targets]
        for name, rule in rules:
            cells = []
            for g in groups:
                rows = [r for r in d["rows"] if r["group"] == g]
                m = ctc.string_metrics([r["ref"] for r in rows], [r["hyp"][str(rule(r))] for r in rows])
                cells.append(f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f}")
            print(f"| {name} | " + " | ".join(cells) + " |")
        for g in groups:
            p = [r["pace"] for r in d["rows"] if r["group"] == g]
            print(f"pace {g}: median {np.median(p):.2f}, p10-p90 {np.quantile(p, 0.1):.2f}-{np.quantile(p, 0.9):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="a string run or shipped model name")
    ap.add_argument("--cache", type=Path, help="fast_voices.py's npz of held-out synthetic voices")
    ap.add_argument("--fold", action="store_true", help="the run's held-out FSDD speaker's test strings instead")
    ap.add_argument("--data", help="the FSDD recordings folder (--fold)")
    ap.add_argument("--strings", type=int, default=200, help="test strings per stretch (--fold)")
    ap.add_argument("--stretch", type=float, nargs="+", default=[1.0, 1.3], help="fold strings said faster, pitch kept")
    ap.add_argument("--factor", type=float, nargs="+", default=list(FACTORS), help="tempo factors (< 1: slower)")
    ap.add_argument("--how", choices=["wsola", "sox", "librosa"], default="wsola", help="the stretcher of --out")
    ap.add_argument("--rescore", default=None, help="single-digit model that rescores each digit (default: none)")
    ap.add_argument("--out", type=Path, help="json of every decoding")
    ap.add_argument("--score", type=Path, nargs="+", help="score rules from earlier --out files instead")
    ap.add_argument("--target", type=float, nargs="+", default=[2.5, 3.0, 3.5], help="target paces, digits/s")
    ap.add_argument("--package", type=float, nargs="+", help="score these STEADY_PACE values through the recogniser")
    ap.add_argument("--frame-s", type=float, default=tempo.FRAME_S, help="WSOLA's frame (tempo.FRAME_S)")
    ap.add_argument("--search-s", type=float, default=tempo.SEARCH_S, help="WSOLA's search (tempo.SEARCH_S)")
    args = ap.parse_args()
    tempo.FRAME_S, tempo.SEARCH_S = args.frame_s, args.search_s  # change_tempo reads them at each call
    if args.package:
        through_package(args)
    elif args.score:
        score(args.score, args.target)
    else:
        decode_all(args)


if __name__ == "__main__":
    main()
