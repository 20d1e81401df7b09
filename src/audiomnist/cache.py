"""Waveform cache: every file decoded and resampled once into one memory-mapped (N, num_samples) array.

Rows follow the given path order and hold left-aligned, energy-cropped clips stored as int16
(x * 32767, rounded and clipped, never peak-normalised so level stays information) or float16.
A folder per key (file list + config + CACHE_VERSION); meta.json is written last, so only a
finished build ever loads. Nothing reads the whole array eagerly: the OS pages it in as needed,
so sets larger than memory work.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .audio import AudioConfig, load_audio, prepare
from .config import from_dict, to_dict
from .errors import AudioError, AudiomnistError
from .paths import atomic_write, atomic_write_text, data_home, short_hash
from .placement import fit_batch

CACHE_VERSION = 1
CHUNK = 128
INT16_SCALE = 32767.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ARRAY, INDEX, META = "waves.npy", "index.npz", "meta.json"


def stored_config(cfg: AudioConfig) -> dict:
    """The config fields that shape what is stored; pad_mode only acts at batch time, so it is left out."""
    return {k: v for k, v in to_dict(cfg).items() if k != "pad_mode"}


def cache_key(paths: Sequence[str], fingerprint: str, cfg: AudioConfig) -> str:
    """Changes whenever the files (fingerprint), their row order or the stored config change."""
    return short_hash(fingerprint, short_hash(list(map(str, paths)), n=32), stored_config(cfg), CACHE_VERSION)


def _decode_rows(
    array: str, offset: int, start: int, paths: Sequence[str], cfg: AudioConfig
) -> tuple[int, np.ndarray, dict[int, str]]:
    """Decode paths into rows start.. of the array file at byte `offset`; return their lengths and errors."""
    n = cfg.num_samples
    dtype = np.dtype(cfg.cache_dtype)
    row = np.zeros(n, dtype)
    lengths = np.zeros(len(paths), np.int32)
    errors: dict[int, str] = {}
    fd = os.open(array, os.O_WRONLY)
    try:
        for i, path in enumerate(paths):
            try:
                x, k = prepare(load_audio(path, cfg.sample_rate, cfg.max_seconds, cfg.resample_quality), cfg)
            except AudioError as e:
                errors[start + i] = str(e)
                continue
            except Exception as e:  # a decoder crash on one file must not lose the other 29,999
                errors[start + i] = f"{path}: {type(e).__name__}: {e}"
                continue
            if dtype == np.int16:
                np.clip(np.rint(x * INT16_SCALE), -32768, 32767, out=x)
            else:
                np.clip(x, -65504, 65504, out=x)
            row[:k] = x
            row[k:] = 0
            os.pwrite(fd, row.data, offset + (start + i) * row.nbytes)
            lengths[i] = k
    finally:
        os.close(fd)
    return start, lengths, errors


def _usable_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _worker_init(parent: int) -> None:
    """Tie a decoding worker to the build: a SIGKILLed parent runs no cleanup, and an orphan would wait forever.

    On Linux the kernel SIGKILLs the worker when its parent dies; if the parent is already gone (killed before
    prctl took effect) the worker leaves at once. SIGINT/SIGTERM are the parent's to handle: it stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _pool(workers: int) -> cf.Executor:
    """Processes (fork on Linux: no re-import, safe since children never touch torch; spawn elsewhere)."""
    method = "fork" if sys.platform == "linux" else "spawn"
    return cf.ProcessPoolExecutor(
        workers, mp_context=mp.get_context(method), initializer=_worker_init, initargs=(os.getpid(),)
    )


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Kill the workers now: leaving the pool's `with` would otherwise wait for each one's current chunk."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.kill()


def _remove_stale_temps(folder: Path) -> None:
    """Delete temp arrays left by killed builds (their pid is gone), never one a live build is writing."""
    for tmp in folder.glob(f".{ARRAY}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[-2])
            if pid != os.getpid():
                os.kill(pid, 0)
                continue
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        tmp.unlink(missing_ok=True)


@dataclass(eq=False)
class WaveformCache:
    cfg: AudioConfig
    key: str
    dir: Path
    waves: np.memmap  # (N, num_samples) int16 or float16, read-only
    lengths: np.ndarray  # (N,) samples of each row that hold the clip
    ok: np.ndarray  # (N,) bool, False where the file could not be decoded
    errors: dict[int, str]  # row -> "path: reason"

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def for_catalog(cls, catalog: Any, cfg: AudioConfig, **kw: Any) -> WaveformCache:
        """Load-or-build the cache of a catalog's files, in its table's row order."""
        return cls.build(catalog.table["path"].tolist(), catalog.fingerprint, cfg, **kw)

    def report_errors(self, limit: int = 10) -> None:
        """List the files that could not be decoded (on stderr), at most `limit` of them by name."""
        rows = sorted(self.errors)
        if not rows:
            return
        print(f"waveform cache: {len(rows)} of {len(self)} files could not be used and are skipped:", file=sys.stderr)
        for r in rows[:limit]:
            print(f"  {self.errors[r]}", file=sys.stderr)
        if len(rows) > limit:
            print(f"  ... and {len(rows) - limit} more (see {self.dir / META})", file=sys.stderr)

    @classmethod
    def build(
        cls,
        paths: Sequence[str],
        fingerprint: str,
        cfg: AudioConfig,
        cache_root: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> WaveformCache:
        """Load the cache for these files and config, or decode them all (in parallel) and save it first."""
        if len(paths) == 0:
            raise AudiomnistError("nothing to cache: the file list is empty")
        key = cache_key(paths, fingerprint, cfg)
        folder = Path(cache_root if cache_root is not None else data_home() / "cache") / key
        cache = cls.open(folder, key, len(paths), cfg)
        if cache is None:
            _build(folder, key, list(map(str, paths)), fingerprint, cfg, workers, progress)
            cache = cls.open(folder, key, len(paths), cfg)
            if cache is None:
                raise AudiomnistError(f"cache at {folder} is unreadable right after building it")
        return cache

    @classmethod
    def open(
        cls, folder: str | os.PathLike, key: str | None = None, n: int | None = None, cfg: AudioConfig | None = None
    ) -> WaveformCache | None:
        """The complete cache in `folder` (matching key/n/cfg when given), or None if absent, partial or stale.

        With `cfg` the cache takes that config (its pad_mode may differ from the one it was built with).
        """
        folder = Path(folder)
        try:
            meta = json.loads((folder / META).read_text())
            mcfg = from_dict(AudioConfig, meta["cfg"])
            N, L = meta["shape"]
            if meta["version"] != CACHE_VERSION or (key is not None and meta["key"] != key):
                return None
            if (n is not None and N != n) or L != mcfg.num_samples:
                return None
            if cfg is not None:
                if stored_config(mcfg) != stored_config(cfg):
                    return None
                mcfg = cfg
            waves = np.load(folder / ARRAY, mmap_mode="r")
            expected = waves.offset + N * L * np.dtype(mcfg.cache_dtype).itemsize
            if waves.shape != (N, L) or waves.dtype != np.dtype(mcfg.cache_dtype):
                return None
            if os.path.getsize(folder / ARRAY) != expected:
                return None
            with np.load(folder / INDEX) as index:
                lengths, ok = index["lengths"], index["ok"]
            if lengths.shape != (N,) or ok.shape != (N,):
                return None
            errors = {int(r): str(msg) for r, msg in meta["errors"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
            return None
        return cls(mcfg, meta["key"], folder, waves, lengths, ok, errors)

    def batch(
        self,
        indices: Sequence[int] | np.ndarray | torch.Tensor,
        train: bool,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rows `indices` as a (B, num_samples) float32 batch on `device`, placed (and shifted) by fit_batch.

        Rows travel as stored (int16/float16: half the bytes of float32), to CUDA from pinned memory without blocking.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        order = np.argsort(idx, kind="stable")
        pin = torch.device(device).type == "cuda"
        dtype = torch.int16 if self.waves.dtype == np.int16 else torch.float16
        buf = torch.empty((len(idx), self.waves.shape[1]), dtype=dtype, pin_memory=pin)
        rows = buf.numpy()
        rows[order] = self.waves[idx[order]]
        x = buf.to(device, non_blocking=pin)
        x = x.float().mul_(1.0 / INT16_SCALE) if rows.dtype == np.int16 else x.float()
        lengths = torch.from_numpy(self.lengths[idx].astype(np.int64))
        return fit_batch(x, lengths, self.cfg, train, generator, shift)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "waves"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.waves = np.load(self.dir / ARRAY, mmap_mode="r")


def _build(
    folder: Path,
    key: str,
    paths: list[str],
    fingerprint: str,
    cfg: AudioConfig,
    workers: int | None,
    progress: bool,
) -> None:
    """Decode every file into a temp array, then rename it, the index and finally meta.json into place."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)
    _remove_stale_temps(folder)
    N, L = len(paths), cfg.num_samples
    nbytes = N * L * np.dtype(cfg.cache_dtype).itemsize
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise AudiomnistError(
            f"not enough disk space for the waveform cache in {folder}: "
            f"needs {nbytes / 1e9:.1f} GB, {free / 1e9:.1f} GB free (set AUDIOMNIST_HOME)"
        )
    tmp = folder / f".{ARRAY}.{os.getpid()}.tmp"
    t0 = time.perf_counter()
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(cfg.cache_dtype), shape=(N, L))
        offset = arr.offset
        del arr
        lengths = np.zeros(N, np.int32)
        errors: dict[int, str] = {}
        chunks = [(s, paths[s : s + CHUNK]) for s in range(0, N, CHUNK)]
        workers = max(1, min(workers or _usable_cores(), len(chunks)))
        bar = tqdm(total=N, desc="caching waveforms", unit="file", disable=None if progress else True)
        with bar:
            if workers == 1:
                results = (_decode_rows(str(tmp), offset, s, ps, cfg) for s, ps in chunks)
                for start, lens, errs in results:
                    lengths[start : start + len(lens)] = lens
                    errors.update(errs)
                    bar.update(len(lens))
            else:
                with _pool(workers) as pool:
                    futures = [pool.submit(_decode_rows, str(tmp), offset, s, ps, cfg) for s, ps in chunks]
                    try:
                        for fut in cf.as_completed(futures):
                            start, lens, errs = fut.result()
                            lengths[start : start + len(lens)] = lens
                            errors.update(errs)
                            bar.update(len(lens))
                    except BaseException:
                        _stop_workers(pool)
                        raise
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, folder / ARRAY)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    ok = np.ones(N, bool)
    ok[list(errors)] = False
    with atomic_write(folder / INDEX) as f:
        np.savez(f, lengths=lengths, ok=ok)
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "fingerprint": fingerprint,
        "cfg": stored_config(cfg),
        "shape": [N, L],
        "dtype": cfg.cache_dtype,
        "num_ok": int(ok.sum()),
        "build_seconds": round(time.perf_counter() - t0, 3),
        "errors": {str(r): errors[r] for r in sorted(errors)},
    }
    atomic_write_text(folder / META, json.dumps(meta, indent=1) + "\n")
