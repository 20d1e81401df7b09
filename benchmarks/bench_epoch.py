"""One training epoch over a whole corpus, from a warm waveform cache: seconds and clips/s.

    python benchmarks/bench_epoch.py [--data PATH] [--model seed-cnn] [--batch-size 64] [--preset v3] [--threads N]

Without --data it uses /tmp/audiomnist-corpus (30,000 files, generated first when missing). The catalog and cache are
built
(or found) first and not timed; then train.fit runs --epochs epochs over every usable clip (the default recipe's
augmentation, log-mel and SpecAugment, or the preset's) and the fastest epoch is printed. Only fit's epoch loop is
timed, not validation or checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiomnist import checkpoint, dataset, runconfig, train  # noqa: E402
from audiomnist.splits import Split  # noqa: E402

from bench_cache import corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="AudioMNIST-layout folder (default: /tmp/audiomnist-corpus)")
    ap.add_argument("--model", default="seed-cnn")
    ap.add_argument("--preset", choices=sorted(runconfig.PRESETS), help="the original recipe's audio and features")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, help="torch threads (default: one per core)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = corpus(args.data)
    cfg = runconfig.TrainConfig()
    if args.preset:
        cfg = runconfig.with_preset(cfg, args.preset)
    cfg = dataclasses.replace(
        cfg, model=args.model, batch_size=args.batch_size, epochs=args.epochs, device=args.device, data=(str(root),)
    )
    t0 = time.perf_counter()
    data = dataset.load_data(cfg, progress=True)  # scan (or saved catalog) + waveform cache, built when missing
    cache_s = time.perf_counter() - t0
    empty = np.zeros(0, np.int64)
    with tempfile.TemporaryDirectory(prefix="bench-epoch-") as work:
        metrics = train.fit(cfg, data, Split(data.usable, empty, empty, "all"), Path(work) / "run", progress=False)
    epochs = [h["seconds"] for h in metrics["history"]]
    clips = len(data.usable) // cfg.batch_size * cfg.batch_size
    result = {
        "data": str(root),
        "clips": clips,
        "model": cfg.model,
        "preset": cfg.preset or None,
        "batch_size": cfg.batch_size,
        "sample_rate": cfg.audio.sample_rate,
        "n_mels": cfg.features.n_mels,
        "n_fft": cfg.features.n_fft,
        "device": str(checkpoint.pick_device(cfg.device)),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "cache_seconds": round(cache_s, 2),
        "epoch_seconds": round(min(epochs), 2),
        "epoch_seconds_all": epochs,
        "clips_per_s": round(clips / min(epochs)),
        "train_acc": metrics["history"][-1]["train_acc"],
    }
    print(
        f"{cfg.model} ({cfg.preset or 'default recipe'}, {cfg.audio.sample_rate} Hz, {cfg.features.n_mels} mels), "
        f"batch {cfg.batch_size}, {result['device']}, {result['threads']} threads: epoch of {clips:,} clips in "
        f"{result['epoch_seconds']:.1f} s ({result['clips_per_s']:,} clips/s); catalog and cache ready in "
        f"{cache_s:.1f} s"
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
