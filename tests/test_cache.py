"""Waveform cache: build once, load after, rebuild on change, survive bad files and killed builds."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import audiomnist.cache as cache_mod
from audiomnist.audio import AudioConfig, load_audio, prepare
from audiomnist.cache import WaveformCache
from audiomnist.errors import AudiomnistError
from audiomnist.paths import short_hash
from audiomnist.placement import load_clip

RATES = [8000, 16000, 44100, 48000]
SUBTYPES = [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")]


def fingerprint(paths: list[str]) -> str:
    return short_hash([(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths])


@pytest.fixture
def tree(tmp_path) -> list[str]:
    """31 tiny files (mixed rates, formats, mono/stereo, 0.1-1.6 s) and one corrupt file at row 7."""
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    paths = []
    for i in range(32):
        if i == 7:
            p = tmp_path / "data" / "broken.wav"
            p.write_text("not audio")
            paths.append(str(p))
            continue
        sr = RATES[i % len(RATES)]
        fmt, subtype = SUBTYPES[i % len(SUBTYPES)]
        n = int(sr * rng.uniform(0.1, 1.6))
        x = (rng.uniform(0.1, 0.9) * np.sin(np.arange(n) * rng.uniform(0.01, 0.2))).astype(np.float32)
        if i % 5 == 0:
            x = np.stack([x, 0.5 * x], axis=1)
        p = tmp_path / "data" / f"{i:02d}.{fmt.lower()}"
        sf.write(p, x, sr, format=fmt, subtype=subtype)
        paths.append(str(p))
    return paths


@pytest.fixture
def counter(monkeypatch) -> list[int]:
    """Counts decodes done in this process (builds with workers=1 run in-process)."""
    calls = [0]
    real = cache_mod.load_audio

    def counting(*a, **kw):
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(cache_mod, "load_audio", counting)
    return calls


def build(paths, cfg=AudioConfig(), root=None, **kw) -> WaveformCache:
    return WaveformCache.build(
        paths, fingerprint(paths), cfg, cache_root=root, workers=kw.pop("workers", 1), progress=False, **kw
    )


def test_build_then_load_without_decoding(tree, tmp_path, counter):
    root = tmp_path / "cache"
    c = build(tree, root=root)
    assert counter[0] == len(tree) and len(c) == len(tree)
    assert c.waves.shape == (32, 16000) and c.waves.dtype == np.int16
    assert (c.dir / "meta.json").exists() and c.dir.parent == root
    st = os.stat(c.dir / "waves.npy")
    c2 = build(tree, root=root)
    assert counter[0] == len(tree)
    st2 = os.stat(c2.dir / "waves.npy")
    assert (st.st_ino, st.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns)
    assert c2.key == c.key and np.array_equal(c2.lengths, c.lengths) and c2.errors == c.errors
    assert not [p for p in c.dir.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_file_is_reported_and_the_rest_are_ok(tree, tmp_path):
    c = build(tree, root=tmp_path / "cache")
    assert list(c.errors) == [7] and "broken.wav" in c.errors[7] and "not a readable audio file" in c.errors[7]
    assert not c.ok[7] and c.ok.sum() == 31
    assert c.lengths[7] == 0 and np.all(c.lengths[c.ok] > 0) and np.all(c.lengths <= 16000)
    assert not c.waves[7].any()
    b = c.batch([7, 0], train=False)
    assert b[0].abs().sum() == 0 and b[1].abs().sum() > 0


def test_report_errors_lists_bad_files_on_stderr(tree, tmp_path, capsys):
    c = WaveformCache.build(tree, fingerprint(tree), AudioConfig(), cache_root=tmp_path / "c", workers=1, progress=True)
    assert "broken.wav" not in capsys.readouterr().err, "the build itself stays quiet; its caller reports once"
    c.report_errors()
    err = capsys.readouterr().err
    assert "1 of 32 files" in err and "broken.wav" in err


def test_changed_file_or_config_rebuilds(tree, tmp_path, counter):
    root = tmp_path / "cache"
    c = build(tree, root=root)
    counter[0] = 0
    build(tree, AudioConfig(pad_mode="noise"), root=root)  # pad_mode acts at batch time only
    assert counter[0] == 0
    build(tree, AudioConfig(sample_rate=8000), root=root)
    assert counter[0] == len(tree)
    x = 0.5 * np.sin(np.arange(4000) * 2 * np.pi * 500 / 8000)
    sf.write(tree[3], x, 8000, subtype="PCM_16")
    os.utime(tree[3], ns=(1, 1))
    counter[0] = 0
    c2 = build(tree, root=root)
    assert counter[0] == len(tree) and c2.key != c.key
    assert c2.lengths[3] == 8000 and abs(c2.waves[3].max() / 32767 - 0.5) < 0.01


def test_row_order_is_part_of_the_key(tree, tmp_path):
    root = tmp_path / "cache"
    a = build(tree, root=root)
    rev = tree[::-1]
    b = WaveformCache.build(rev, fingerprint(tree), AudioConfig(), cache_root=root, workers=1, progress=False)
    assert a.key != b.key
    np.testing.assert_array_equal(b.waves[::-1], a.waves)


def test_failed_build_never_loads_and_the_next_one_recovers(tree, tmp_path, monkeypatch, counter):
    root = tmp_path / "cache"
    real = cache_mod._decode_rows
    done = [0]

    def dying(*a, **kw):
        if done[0] == 1:
            raise KeyboardInterrupt
        done[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(cache_mod, "CHUNK", 8)
    monkeypatch.setattr(cache_mod, "_decode_rows", dying)
    with pytest.raises(KeyboardInterrupt):
        build(tree, root=root)
    folder = root / cache_mod.cache_key(tree, fingerprint(tree), AudioConfig())
    assert not (folder / "meta.json").exists() and not (folder / "waves.npy").exists()
    assert not list(folder.iterdir())
    assert WaveformCache.open(folder) is None
    monkeypatch.setattr(cache_mod, "_decode_rows", real)
    counter[0] = 0
    c = build(tree, root=root)
    assert counter[0] == len(tree) and c.ok.sum() == 31


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_killed_build_leftovers_are_ignored_and_cleaned(tree, tmp_path, counter):
    root = tmp_path / "cache"
    folder = root / cache_mod.cache_key(tree, fingerprint(tree), AudioConfig())
    folder.mkdir(parents=True)
    (folder / "waves.npy").write_bytes(b"\x93NUMPY partial")  # killed between rename and meta.json
    stale = folder / f".waves.npy.{dead_pid()}.tmp"
    stale.write_bytes(b"half written")
    assert WaveformCache.open(folder) is None
    c = build(tree, root=root)
    assert counter[0] == len(tree) and c.ok.sum() == 31 and not stale.exists()


def test_truncated_array_or_bad_meta_rebuilds(tree, tmp_path, counter):
    root = tmp_path / "cache"
    c = build(tree, root=root)
    with open(c.dir / "waves.npy", "r+b") as f:
        f.truncate(os.path.getsize(c.dir / "waves.npy") - 2)
    counter[0] = 0
    c = build(tree, root=root)
    assert counter[0] == len(tree)
    (c.dir / "meta.json").write_text("{not json")
    counter[0] = 0
    build(tree, root=root)
    assert counter[0] == len(tree)


def test_batch_shape_order_and_placement(tree, tmp_path):
    c = build(tree, root=tmp_path / "cache")
    idx = [5, 2, 5, 0, 31]
    b = c.batch(idx, train=False)
    assert b.shape == (5, 16000) and b.dtype == torch.float32 and b.device.type == "cpu"
    for row, i in zip(b, idx):
        torch.testing.assert_close(row, c.batch([i], train=False)[0])
    torch.testing.assert_close(b, c.batch(torch.tensor(idx), train=False))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(c.batch(idx, True, g1), c.batch(idx, True, g2))


def test_values_round_trip_within_int16_quantisation(tree, tmp_path):
    cfg = AudioConfig()
    c = build(tree, cfg, root=tmp_path / "cache")
    for i in (0, 1, 2, 3, 10, 31):
        x, k = prepare(load_audio(tree[i], cfg.sample_rate, cfg.max_seconds), cfg)
        assert c.lengths[i] == k
        np.testing.assert_allclose(c.waves[i, :k] / 32767, x, atol=0.5 / 32767 + 1e-7)
        assert not c.waves[i, k:].any()
        torch.testing.assert_close(c.batch([i], train=False)[0], load_clip(tree[i], cfg), atol=1e-4, rtol=0)


def test_no_peak_normalisation(tmp_path):
    p = tmp_path / "quiet.wav"
    sf.write(p, np.full(1000, 0.01, np.float32), 16000, subtype="FLOAT")
    c = build([str(p)], root=tmp_path / "cache")
    assert c.waves[0, :1000].max() == round(0.01 * 32767)


def test_float16_mode(tree, tmp_path):
    cfg = AudioConfig(cache_dtype="float16")
    c = build(tree, cfg, root=tmp_path / "cache")
    assert c.waves.dtype == np.float16
    x, k = prepare(load_audio(tree[2], cfg.sample_rate, cfg.max_seconds), cfg)
    np.testing.assert_allclose(c.waves[2, :k].astype(np.float32), x, rtol=1e-3, atol=1e-4)
    b = c.batch([2, 7], train=False)
    assert b.dtype == torch.float32 and torch.isfinite(b).all()


def test_process_pool_build_matches_in_process(tree, tmp_path, monkeypatch):
    a = build(tree, root=tmp_path / "one", workers=1)
    monkeypatch.setattr(cache_mod, "CHUNK", 8)  # several chunks, so two workers really share the files
    pools = []
    real_pool = cache_mod._pool
    monkeypatch.setattr(cache_mod, "_pool", lambda n: pools.append(n) or real_pool(n))
    b = build(tree, root=tmp_path / "two", workers=2)
    assert pools == [2]
    np.testing.assert_array_equal(np.asarray(a.waves), np.asarray(b.waves))
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert a.errors == b.errors


def test_for_catalog_uses_table_order_and_fingerprint(tree, tmp_path):
    cat = SimpleNamespace(table=pd.DataFrame({"path": tree}), fingerprint=fingerprint(tree))
    c = WaveformCache.for_catalog(cat, AudioConfig(), cache_root=tmp_path / "cache", workers=1, progress=False)
    assert c.key == cache_mod.cache_key(tree, cat.fingerprint, AudioConfig()) and len(c) == len(tree)


def test_default_root_is_under_data_home(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOMNIST_HOME", str(tmp_path / "home"))
    c = WaveformCache.build(tree[:3], "fp", AudioConfig(), workers=1, progress=False)
    assert c.dir.parent == tmp_path / "home" / "cache"


def test_pickle_does_not_copy_the_array(tree, tmp_path):
    c = build(tree, root=tmp_path / "cache")
    blob = pickle.dumps(c)
    assert len(blob) < c.waves.nbytes / 10
    c2 = pickle.loads(blob)
    assert isinstance(c2.waves, np.memmap)
    torch.testing.assert_close(c2.batch([0, 1], train=False), c.batch([0, 1], train=False))


def test_empty_file_list_is_a_clear_error(tmp_path):
    with pytest.raises(AudiomnistError, match="empty"):
        WaveformCache.build([], "fp", AudioConfig(), cache_root=tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_on_cuda(tree, tmp_path):
    c = build(tree, AudioConfig(pad_mode="noise"), root=tmp_path / "cache")
    g = torch.Generator(device="cuda").manual_seed(0)
    b = c.batch([0, 1, 2], train=True, generator=g, device="cuda")
    assert b.device.type == "cuda" and b.shape == (3, 16000)


# --- killed builds must not leave decoding workers behind -------------------------------------------------------

SLOW_BUILD = r'''
"""Build a cache with 2 workers, decoding slowed down, so that it can be killed half-way: argv = how, root."""
import os, sys, time
import numpy as np, soundfile as sf
import audiomnist.cache as cache

how, root = sys.argv[1], sys.argv[2]
os.makedirs(f"{root}/data", exist_ok=True)
for i in range(160):
    sf.write(f"{root}/data/{i % 10}_s{i % 4}_{i}.wav", np.full(800, 0.1 * (1 + i % 5), np.float32), 8000)
real_load = cache.load_audio


def slow(*a, **k):
    time.sleep(0.05)
    return real_load(*a, **k)


cache.load_audio, cache.CHUNK, cache._usable_cores = slow, 4, lambda: 2
print("ready", flush=True)
if how == "cli":  # through the command line, so its SIGTERM handling is the one tested
    from audiomnist.cli import main
    sys.exit(main(["analyze", f"{root}/data", "--out", f"{root}/report", "--no-progress"]))
from audiomnist.audio import AudioConfig
paths = sorted(str(p) for p in __import__("pathlib").Path(root, "data").iterdir())
cache.WaveformCache.build(paths, "fp", AudioConfig(sample_rate=8000), cache_root=f"{root}/cache", workers=2,
                          progress=False)
'''


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and (_stat(int(d)) or ["", ""])[1] == str(pid)]


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has exited, only nobody reaped it


@pytest.mark.skipif(not Path("/proc/self/stat").is_file() or not hasattr(signal, "SIGKILL"), reason="needs Linux /proc")
@pytest.mark.parametrize("how, sig", [("build", "SIGKILL"), ("cli", "SIGTERM")])
def test_killed_cache_build_leaves_no_worker_running(tmp_path, how, sig):
    script = tmp_path / "slow_build.py"
    script.write_text(SLOW_BUILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUDIOMNIST_HOME": str(tmp_path / "home")}
    log = tmp_path / "stderr.txt"  # a file, not a pipe: workers that survive would hold a pipe open forever
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, str(script), how, str(tmp_path)], env=env, stdout=subprocess.DEVNULL, stderr=f
        )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = _children(proc.pid)
        assert len(workers) >= 2, f"the build never started its workers: {log.read_text()}"
        time.sleep(0.5)  # some chunks decoded, most not
        os.kill(proc.pid, getattr(signal, sig))
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], f"decoding workers outlived the {sig}ed build"
    finally:
        for w in workers:  # never leave them behind for the rest of the test run, even when the test fails
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    if sig == "SIGTERM":  # cleaned up like Ctrl-C: one line, no traceback, no temp array left
        err = log.read_text()
        assert proc.returncode == 128 + signal.SIGTERM and "terminated" in err and "Traceback" not in err, err
        assert not list((tmp_path / "home").rglob("*.tmp"))
