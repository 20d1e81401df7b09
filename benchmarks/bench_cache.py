"""Waveform cache throughput: cold build (files/s), warm load, batch assembly (clips/s), and where build time goes.

    python benchmarks/bench_cache.py [--data PATH] [--rate 16000] [--workers N] [--limit N]

Without --data it uses /tmp/audiomnist-corpus, generating it first (about 70 s, 1.8 GB) with
../shared/tools/make_corpus.py. Caches are built in a fresh temp folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiomnist.audio import AudioConfig, crop_on_energy, resample
from audiomnist.cache import WaveformCache
from audiomnist.paths import short_hash

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))
DEFAULT_CORPUS = Path(tempfile.gettempdir()) / "audiomnist-corpus"


def corpus(data: str | None) -> Path:
    if data:
        return Path(data)
    if DEFAULT_CORPUS.is_dir():
        return DEFAULT_CORPUS
    tool = SHARED / "tools" / "make_corpus.py"
    if not tool.is_file():
        sys.exit(f"no --data given, {DEFAULT_CORPUS} absent, and {tool} not found to generate it")
    partial = DEFAULT_CORPUS.with_name(DEFAULT_CORPUS.name + ".partial")
    cmd = [sys.executable, str(tool), str(partial)]
    print(f"generating the corpus (about 70 s, 1.8 GB): {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    partial.rename(DEFAULT_CORPUS)
    return DEFAULT_CORPUS


def file_list(root: Path, limit: int | None) -> tuple[list[str], str]:
    """Paths and fingerprint from catalog.scan when it is importable, else a cheap glob of */*.wav."""
    t = time.perf_counter()
    try:
        from audiomnist.catalog import scan
    except ImportError:
        paths = sorted(glob.glob(str(root / "*" / "*.wav")))
        fp = short_hash([(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths])
        how = "glob */*.wav"
    else:
        cat = scan(root, progress=False)
        paths, fp, how = cat.table["path"].tolist(), cat.fingerprint, "catalog.scan"
    print(f"file list: {len(paths)} files via {how} in {time.perf_counter() - t:.2f} s")
    if limit:
        paths, fp = paths[:limit], short_hash(fp, limit)
    return paths, fp


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_build(paths: list[str], fp: str, cfg: AudioConfig, root: Path, workers: int | None, label: str):
    c0, t0 = cpu_seconds(), time.perf_counter()
    cache = WaveformCache.build(paths, fp, cfg, cache_root=root, workers=workers, progress=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(
        f"{label:34s} {len(paths) / wall:7.0f} files/s  ({wall:.2f} s wall, {len(paths) / cpu:.0f} files per "
        "CPU-second,"
        f" {cpu / wall:.2f} cores busy)"
    )
    return cache


def profile(paths: list[str], cfg: AudioConfig, n: int = 1000) -> None:
    """Single-core split of the per-file work (page cache warm)."""
    rng = np.random.default_rng(0)
    sample = [paths[i] for i in rng.choice(len(paths), min(n, len(paths)), replace=False)]
    t = dict(open_read=0.0, downmix_check=0.0, resample=0.0, crop=0.0, quantise_write=0.0)
    row = np.zeros(cfg.num_samples, np.int16)
    fd, tmp = tempfile.mkstemp()
    try:
        for i, p in enumerate(sample):
            a = time.perf_counter()
            with sf.SoundFile(p) as f:
                sr = f.samplerate
                if f.subtype == "PCM_16":
                    x = np.multiply(f.read(dtype="int16", always_2d=True), np.float32(1 / 32768))
                else:
                    x = f.read(dtype="float32", always_2d=True)
            b = time.perf_counter()
            x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
            np.isfinite(x.sum(dtype=np.float64))
            c = time.perf_counter()
            if sr != cfg.sample_rate:
                x = resample(x, sr, cfg.sample_rate, cfg.resample_quality)
            d = time.perf_counter()
            x = crop_on_energy(x, cfg.num_samples)
            e = time.perf_counter()
            y = np.clip(np.rint(x * 32767.0), -32768, 32767)
            row[: len(y)] = y
            row[len(y) :] = 0
            os.pwrite(fd, row.data, i * row.nbytes)
            g = time.perf_counter()
            for k, v in zip(t, (b - a, c - b, d - c, e - d, g - e)):
                t[k] += v
    finally:
        os.close(fd)
        os.unlink(tmp)
    total = sum(t.values())
    parts = ", ".join(f"{k} {v / len(sample) * 1e6:.0f} us" for k, v in t.items())
    print(f"per file on one core: {total / len(sample) * 1e6:.0f} us = {parts}")


def bench_batches(cache: WaveformCache, batch: int, steps: int = 50) -> None:
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    rows = np.flatnonzero(cache.ok)
    for pad_mode in ("zeros", "noise"):
        cache.cfg = dataclasses.replace(cache.cfg, pad_mode=pad_mode)
        for train in (True, False):
            idx = [rng.choice(rows, batch) for _ in range(steps + 3)]
            for i in idx[:3]:
                cache.batch(i, train, g)
            t = time.perf_counter()
            for i in idx[3:]:
                cache.batch(i, train, g)
            dt = (time.perf_counter() - t) / steps
            print(
                f"batch {batch} x {cache.waves.shape[1]} ({'train' if train else 'eval'}, pad {pad_mode}): "
                f"{dt * 1e3:.2f} ms = {dt / batch * 1e6:.0f} us/clip, {batch / dt:.0f} clips/s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder of audio (default: /tmp/audiomnist-corpus, generated if absent)")
    ap.add_argument("--rate", type=int, default=16000, help="cache sample rate (default 16000)")
    ap.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N files")
    ap.add_argument("--dtype", default="int16", choices=["int16", "float16"])
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    root = corpus(args.data)
    print(
        f"data: {root}; cores: {os.cpu_count()}, workers: {args.workers or os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}"
    )
    paths, fp = file_list(root, args.limit)
    cfg = AudioConfig(sample_rate=args.rate, cache_dtype=args.dtype)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        timed_build(paths, fp, cfg, tmp / "a", args.workers, "cold build (page cache as found)")
        timed_build(paths, fp, cfg, tmp / "b", args.workers, "cold build (page cache warm)")
        t = time.perf_counter()
        cache = WaveformCache.build(paths, fp, cfg, cache_root=tmp / "b", progress=False)
        print(
            f"warm load of the finished cache: {(time.perf_counter() - t) * 1e3:.1f} ms "
            f"({cache.waves.nbytes / 1e9:.2f} GB array, {int(cache.ok.sum())} ok, {len(cache.errors)} errors)"
        )
        bench_batches(cache, args.batch)
        profile(paths, cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
