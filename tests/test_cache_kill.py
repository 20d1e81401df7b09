"""Reliability of the waveform cache: a build SIGKILLed at any point leaves nothing that a rebuild would trust."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audiomnist.audio import AudioConfig
from audiomnist.cache import ARRAY, META, WaveformCache, cache_key
from audiomnist.infer import find_audio

from conftest import BROKEN, ONE_THREAD_ENV, killed, needs_sigkill


@pytest.fixture(scope="module")
def cache_job(corpus, tmp_path_factory) -> tuple[list[str], Path, WaveformCache]:
    """The corpus' files (bad ones included) and a reference cache built without interruption."""
    paths = [str(p) for p in find_audio([str(corpus)], problems=[]) if p.stat().st_size < 2**20]
    listing = tmp_path_factory.mktemp("cache_job") / "paths.json"
    listing.write_text(json.dumps(paths))
    ref = WaveformCache.build(
        paths, "fp", AudioConfig(sample_rate=8000), cache_root=listing.parent / "ref", progress=False
    )
    return paths, listing, ref


def rebuilt_like_reference(paths: list[str], root: Path, ref: WaveformCache) -> None:
    cfg = AudioConfig(sample_rate=8000)
    key = cache_key(paths, "fp", cfg)
    assert WaveformCache.open(root / key, key, len(paths), cfg) is None, "a partial cache would have been loaded"
    cache = WaveformCache.build(paths, "fp", cfg, cache_root=root, progress=False)
    assert cache.dir == root / key
    np.testing.assert_array_equal(cache.waves, ref.waves)
    np.testing.assert_array_equal(cache.lengths, ref.lengths)
    np.testing.assert_array_equal(cache.ok, ref.ok)
    assert cache.errors == ref.errors
    assert set(BROKEN) <= {Path(paths[r]).name for r in cache.errors}
    assert not list((root / key).glob(f".{ARRAY}.*.tmp")), "temp arrays of the killed build were left behind"


@needs_sigkill
@pytest.mark.parametrize("mode", ["chunk", "meta"])
def test_sigkill_cache_build_then_rebuild(cache_job, killer, tmp_path, mode):
    paths, listing, ref = cache_job
    killed(killer, mode, 3, [str(tmp_path), str(listing)])
    (folder,) = tmp_path.iterdir()
    assert not (folder / META).exists()
    rebuilt_like_reference(paths, tmp_path, ref)


@needs_sigkill
def test_sigkill_parallel_cache_build_from_outside(cache_job, killer, tmp_path):
    paths, listing, ref = cache_job
    proc = subprocess.Popen(
        [sys.executable, str(killer), "build", "0", str(tmp_path), str(listing)],
        env=ONE_THREAD_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(f"*/.{ARRAY}.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # some chunks written, most not
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the build and its decoding workers, like kill -9 of the job
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not list(tmp_path.glob(f"*/{META}")), "the build finished before the kill"
    rebuilt_like_reference(paths, tmp_path, ref)
