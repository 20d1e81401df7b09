"""Sanity statistics of a synthesised corpus, and the shipped FSDD model's accuracy on a sample of it.

There is no speech recogniser to check that each clip says its digit; the shipped model (trained on FSDD only:
six male speakers) stands in: far above chance (10 %) means the labels and words are right.

    python experiments/voices/check_corpus.py /work/synth-corpus [--sample 3000]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audiomnist import catalog
from audiomnist.infer import Classifier


def layout_and_levels(out: Path, rows: list[dict], rng: np.random.Generator) -> None:
    cat = catalog.scan(out, progress=False)
    t = cat.table
    per_speaker = t.drop_duplicates("speaker")
    print(f"layout {cat.layout}: {len(t)} clips, {t.speaker.nunique()} speakers, {len(cat.skipped)} skipped")
    print("gender", per_speaker.gender.value_counts().to_dict())
    print("accent", per_speaker.accent.value_counts().to_dict())
    print(f"duration s: mean {t.duration.mean():.2f}, 5-95 % {t.duration.quantile(0.05):.2f}-"
          f"{t.duration.quantile(0.95):.2f}, total {t.duration.sum() / 3600:.2f} h")  # fmt: skip
    print("0 said as", dict(collections.Counter(r["word"] for r in rows if r["digit"] == "0")))
    clipped, rms = 0, []
    for r in rng.choice(rows, min(1000, len(rows)), replace=False):
        x, _ = sf.read(out / r["file"], dtype="int16")
        clipped += int(np.abs(x.astype(np.int32)).max() >= 32767)
        rms.append(20 * np.log10(np.sqrt(np.mean((x / 32768.0) ** 2)) + 1e-12))
    p5, p50, p95 = np.percentile(rms, [5, 50, 95])
    print(f"1000 random clips: {clipped} clipped, RMS {p5:.1f} / {p50:.1f} / {p95:.1f} dBFS (5/50/95 %)")


def model_accuracy(out: Path, rows: list[dict], meta: dict, n: int, rng: np.random.Generator) -> None:
    pick = list(rng.choice(rows, min(n, len(rows)), replace=False))
    preds, errors = Classifier.load().predict_files([out / r["file"] for r in pick])
    if errors:
        raise SystemExit(f"{len(errors)} unreadable clips, the first: {errors[0]}")
    hits = collections.defaultdict(list)
    for r, p in zip(pick, preds):
        recipe = meta[r["speaker"]]["recipe"]
        ok = p.label == r["digit"]
        hits["all"].append(ok)
        hits[f"engine {recipe['engine']}"].append(ok)
        hits[f"channel {recipe['channel']}"].append(ok)
        hits[f"gender {meta[r['speaker']]['gender']}"].append(ok)
        if r["digit"] == "0":
            hits[f"0 said as {r['word']}"].append(ok)
    print(f"shipped FSDD model on {len(pick)} random clips:")
    for key, v in sorted(hits.items()):
        print(f"  {key:24s} {len(v):5d} clips  {100 * np.mean(v):5.1f} %")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--sample", type=int, default=3000, help="clips the model classifies (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = list(csv.DictReader(open(args.corpus / "takes.csv", encoding="utf-8")))
    meta = json.loads((args.corpus / "speakers.json").read_text())
    layout_and_levels(args.corpus, rows, np.random.default_rng(args.seed))
    model_accuracy(args.corpus, rows, meta, args.sample, np.random.default_rng(args.seed))


if __name__ == "__main__":
    main()
