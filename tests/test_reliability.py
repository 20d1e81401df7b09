"""Reliability: a corpus of bad inputs through scan, analyze, train, predict and the REST API; SIGKILLed training
runs and cache builds; checkpoints crafted to run code; 2,000 mixed requests from 16 clients against a live server.

Every bad file must produce one clear message naming it, and every good file must still be processed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from audiomnist import cli
from audiomnist.audio import AudioConfig
from audiomnist.cache import ARRAY, META, WaveformCache, cache_key
from audiomnist.catalog import scan
from audiomnist.checkpoint import load_checkpoint
from audiomnist.errors import AudiomnistError
from audiomnist.infer import Classifier, find_audio

REPO = Path(__file__).resolve().parents[1]
SR = 8000
SPEAKERS = ("01", "02", "03", "04")
NON_UTF8 = os.fsdecode(b"4_01_\xff\xfe.wav")  # a Latin-1 name: not valid UTF-8
# Files that no stage can use, and a word each message must contain.
BROKEN = {
    "1_01_50.wav": "data",  # truncated header: "No 'data' chunk marker"
    "2_01_51.wav": "empty",
    "3_01_52.wav": "not recognised",  # text renamed .wav: libsndfile's "Format not recognised"
    "0_01_59.wav": "nan",
    "1_01_60.wav": "nan",  # +inf: "NaN or infinite sample(s)"
}
# Unusual but valid files: every stage must process them.
ODD = ("4_01_53.wav", "5_01_54.wav", "6_01_55.wav", "7_01_56.wav", "8_01_57.wav", "9_01_58.wav", "3_01_62.wav")
UNLABELLED = "hello.wav"
# Every file a training run must use: the tones and the odd-but-valid files.
GOOD = sorted([f"{sid}/{d}_{sid}_{r}.wav" for sid in SPEAKERS for d in range(10) for r in range(2)]
              + [f"01/{n}" for n in ODD])
FAST = ["--epochs", "3", "--batch-size", "16", "--no-progress", "--model-arg", "width=1", "--seed", "3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc (memory, open files)")
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def tone(digit: int, speaker: int, rep: int) -> np.ndarray:
    """A learnable 'spoken digit': a chord whose pitch encodes the digit, in a short silence."""
    rng = np.random.default_rng(1000 * speaker + 10 * digit + rep)
    n = int(SR * rng.uniform(0.35, 0.6))
    t = np.arange(n) / SR
    f0 = 300 + 220 * digit * (1 + 0.02 * speaker)
    x = (0.4 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)) * np.hanning(n)
    x = np.concatenate([np.zeros(int(rng.uniform(0.02, 0.1) * SR)), x, np.zeros(int(0.05 * SR))])
    return (x + rng.normal(0, 0.003, len(x))).astype(np.float32)


def write_bad_corpus(root: Path) -> None:
    """AudioMNIST layout: 4 speakers x 10 digits x 2 tones, plus every kind of bad or odd file in speaker 01."""
    for s, sid in enumerate(SPEAKERS, 1):
        (root / sid).mkdir(parents=True)
        for d in range(10):
            for r in range(2):
                sf.write(root / sid / f"{d}_{sid}_{r}.wav", tone(d, s, r), SR, subtype="PCM_16")
    d = root / "01"
    wav = io.BytesIO()
    sf.write(wav, tone(1, 1, 50), SR, format="WAV", subtype="PCM_16")
    (d / "1_01_50.wav").write_bytes(wav.getvalue()[:30])
    (d / "2_01_51.wav").write_bytes(b"")
    (d / "3_01_52.wav").write_text("this is a text file, not audio\n")
    sf.write(d / "4_01_53.wav", tone(4, 1, 53), SR, subtype="PCM_U8")
    sf.write(d / "5_01_54.wav", tone(5, 1, 54), SR, subtype="PCM_24")
    sf.write(d / "6_01_55.wav", tone(6, 1, 55), SR, subtype="FLOAT")
    x = tone(7, 1, 56)
    sf.write(d / "7_01_56.wav", np.stack([x, 0.5 * x], axis=1), SR, subtype="PCM_16")
    sf.write(d / "8_01_57.wav", soxr.resample(tone(8, 1, 57), SR, 96000), 96000, subtype="PCM_16")
    sf.write(d / "9_01_58.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    for name, value, rep in (("0_01_59.wav", np.nan, 59), ("1_01_60.wav", np.inf, 60)):
        x = tone(int(name[0]), 1, rep)
        x[len(x) // 2] = value
        sf.write(d / name, x, SR, subtype="FLOAT")
    long = np.random.default_rng(7).normal(0, 0.003, 600 * SR).astype(np.float32)  # 10 minutes, a word at 5 s
    word = tone(3, 1, 62)
    long[5 * SR : 5 * SR + len(word)] += word
    sf.write(d / "3_01_62.wav", long, SR, subtype="PCM_16")
    sf.write(d / UNLABELLED, tone(2, 1, 61), SR, subtype="PCM_16")
    (d / NON_UTF8).write_bytes((root / "02" / "4_02_0.wav").read_bytes())
    os.symlink("..", d / "loop")  # 01/loop -> the dataset root: a cycle


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the same arithmetic as the OMP_NUM_THREADS=1 subprocesses, and no spinning on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_corpus")
    write_bad_corpus(root)
    return root


def mentioning(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if name in line]


# --- scan -------------------------------------------------------------------------------------------------------


def test_scan_skips_each_bad_file_with_one_reason(corpus):
    catalog = scan(corpus, progress=False)
    rel = catalog.table["relpath"].tolist()
    assert len(rel) == len(set(rel)) and not any("loop" in r for r in rel), "the symlink loop was followed"
    # A header scan cannot see NaN samples: those two are catalogued and rejected at decoding.
    assert sorted(rel) == sorted(GOOD + ["01/0_01_59.wav", "01/1_01_60.wav"])
    skipped = dict(zip(catalog.skipped["path"], catalog.skipped["reason"]))
    assert len(skipped) == len(catalog.skipped) == 5
    reasons = {Path(p).name: r for p, r in skipped.items()}
    assert "data" in reasons["1_01_50.wav"]
    assert "empty" in reasons["2_01_51.wav"]
    assert "unreadable" in reasons["3_01_52.wav"]
    assert "label" in reasons[UNLABELLED]
    assert "UTF-8" in reasons["4_01_\\xff\\xfe.wav"]  # shown printable, never as raw surrogates
    t = catalog.table.set_index("relpath")
    assert t.at["01/8_01_57.wav", "sample_rate"] == 96000 and t.at["01/7_01_56.wav", "channels"] == 2
    assert t.at["01/4_01_53.wav", "subtype"] == "PCM_U8" and t.at["01/5_01_54.wav", "subtype"] == "PCM_24"
    assert t.at["01/3_01_62.wav", "duration"] == pytest.approx(600.0)


def test_scan_cli_names_each_skipped_file(corpus, tmp_path, capsys):
    assert cli.main(["data", "scan", str(corpus), "--out", str(tmp_path / "cat"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in ("1_01_50.wav", "2_01_51.wav", "3_01_52.wav", UNLABELLED, "4_01_\\xff\\xfe.wav"):
        assert len(mentioning(out.splitlines(), name)) == 1, name
    saved = pd.read_csv(tmp_path / "cat" / "skipped.csv", dtype=str, keep_default_na=False)
    assert len(saved) == 5


# --- analyze ----------------------------------------------------------------------------------------------------


def test_analyze_flags_each_bad_file_and_measures_every_good_one(corpus, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["analyze", str(corpus), "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.html").is_file()
    flags = pd.read_csv(out / "flags.csv", keep_default_na=False)
    unreadable = flags[flags["flag"] == "unreadable"]
    names = [Path(p).name for p in unreadable["path"]]
    assert sorted(names) == sorted(BROKEN), unreadable
    for name, word in BROKEN.items():
        (detail,) = unreadable.loc[[Path(p).name == name for p in unreadable["path"]], "detail"]
        assert word in detail.lower(), (name, detail)
    name_flags = [Path(p).name for p in flags.loc[flags["flag"] == "name", "path"]]
    assert UNLABELLED in name_flags and "4_01_\\xff\\xfe.wav" in name_flags
    per_file = pd.read_csv(out / "per_file.csv").set_index("relpath")
    assert per_file.loc[GOOD, "peak"].notna().all() and per_file.loc[GOOD, "rms"].notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decoded"] == len(GOOD)


# --- train ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> tuple[Path, str]:
    """A tiny model trained on the bad corpus, with everything the run printed."""
    runs = tmp_path_factory.mktemp("runs")
    proc = subprocess.run([sys.executable, "-m", "audiomnist.cli", "train", "--data", str(corpus), "--runs", str(runs), *FAST],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir, proc.stdout + proc.stderr


def test_train_names_each_bad_file_and_uses_every_good_one(corpus, trained):
    run_dir, output = trained
    lines = output.splitlines()
    for name in list(BROKEN) + [UNLABELLED, "4_01_\\xff\\xfe.wav"]:
        assert mentioning(lines, name), f"{name} not mentioned:\n{output}"
    assert "Traceback" not in output
    split = json.loads((run_dir / "metrics.json").read_text())["split"]
    assert split["train_clips"] + split["val_clips"] + split["test_clips"] == len(GOOD)


# --- predict ----------------------------------------------------------------------------------------------------


def test_predict_files_reports_each_bad_file_and_predicts_the_rest(corpus, trained):
    clf = Classifier.load(trained[0])
    paths = find_audio([str(corpus)])
    assert not any("loop" in str(p) for p in paths)
    preds, errors = clf.predict_files(paths)
    failed = {Path(e.path).name: e for e in errors}
    assert sorted(failed) == sorted(BROKEN), [str(e) for e in errors]
    for name, e in failed.items():
        assert name in str(e) and BROKEN[name] in e.reason.lower(), str(e)
    done = {Path(p.path).name for p in preds}
    assert set(ODD) | {UNLABELLED, NON_UTF8} <= done
    assert len(preds) + len(errors) == len(paths)


def test_predict_cli_prints_every_file_it_could_read(corpus, trained):
    """A real process with a strict UTF-8 stdout (as under en_US.UTF-8): a name that is not UTF-8 must not crash it."""
    proc = subprocess.run([sys.executable, "-m", "audiomnist.cli", "predict", str(corpus / "01"), "--model", str(trained[0]),
                           "--no-progress"], env={**ENV, "PYTHONIOENCODING": "utf-8"}, capture_output=True, timeout=300)
    stdout, stderr = (s.decode("utf-8", "backslashreplace") for s in (proc.stdout, proc.stderr))
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped:")]
    assert sorted(Path(line.split(": ")[1]).name for line in skipped) == sorted(BROKEN)
    rows = [line for line in stdout.splitlines() if line.startswith(str(corpus / "01"))]
    assert len(rows) == len([p for p in (corpus / "01").iterdir() if p.is_file()]) - len(BROKEN), stdout


# --- REST API: bad inputs -----------------------------------------------------------------------------------------


def multipart(filename: bytes, data: bytes, field: bytes = b"file") -> tuple[bytes, dict]:
    """A multipart body built by hand, so a file name can be any bytes (as browsers and curl send them)."""
    b = b"reliability-boundary"
    body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="' + field + b'"; filename="' + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b"\r\n--" + b + b"--\r\n")
    return body, {"content-type": "multipart/form-data; boundary=" + b.decode()}


def test_api_rejects_each_bad_file_by_name_and_answers_the_rest(corpus, trained, tmp_path):
    from fastapi.testclient import TestClient

    from audiomnist.serve import create_app

    clf = Classifier.load(trained[0])
    client = TestClient(create_app(clf, max_upload_bytes=16 * 2**20))
    for path in sorted(p for p in (corpus / "01").iterdir() if p.is_file()):
        body, headers = multipart(os.fsencode(path.name), path.read_bytes())
        r = client.post("/predict", content=body, headers=headers)
        if path.name in BROKEN:
            assert r.status_code in (415, 422), (path.name, r.status_code, r.text)
            assert path.name in r.json()["detail"] and BROKEN[path.name] in r.json()["detail"].lower(), r.text
        else:
            assert r.status_code == 200, (path.name, r.text)
            (tmp_path / "clip.wav").write_bytes(path.read_bytes())  # the offline answer, whatever the file's name
            expected = clf.predict_file(tmp_path / "clip.wav")
            assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4), path.name


# --- checkpoints that execute code ---------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs os.makedirs(marker): what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_checkpoint_that_runs_code_is_refused(trained, tmp_path, capsys):
    marker = tmp_path / "pwned"
    good = torch.load(trained[0] / "best.pt", weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**good, "config": Payload(marker)}, evil)

    for load in (load_checkpoint, lambda p: Classifier.load(p), lambda p: Classifier.load(p, backend="onnx")):
        with pytest.raises(AudiomnistError, match="refused to load") as e:
            load(evil)
        assert str(evil) in str(e.value)
    assert cli.main(["predict", str(trained[0] / "best.pt"), "--model", str(evil)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "refused to load" in err and str(evil) in err

    run = tmp_path / "run"  # --resume reads last.pt: a poisoned one must be refused too
    run.mkdir()
    (run / "config.json").write_text((trained[0] / "config.json").read_text())
    torch.save({**torch.load(trained[0] / "last.pt", weights_only=True), "rng": Payload(marker)}, run / "last.pt")
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists(), "the payload ran"

    with pytest.raises(pickle.UnpicklingError):  # the payload is real: only weights_only stops it
        torch.load(evil, weights_only=True)
    torch.load(evil, weights_only=False)
    assert marker.is_dir()


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in sorted((REPO / "src" / "audiomnist").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((f"{path.name}:{node.lineno}", safe))
    assert calls, "no torch.load call found"
    assert all(safe for _, safe in calls), [c for c, safe in calls if not safe]


# --- SIGKILL: training and the cache build ------------------------------------------------------------------------

KILLER = r'''
"""Run `audiomnist` (or a cache build) and SIGKILL this very process at a chosen point."""
import io, json, os, signal, sys, time


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


mode, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
count = [0]
if mode == "step":  # inside training step n (counted from the start of this process)
    import audiomnist.train as train
    real_step = train.augment_waveforms

    def step(*a, **k):
        count[0] += 1
        if count[0] == n:
            die()
        return real_step(*a, **k)

    train.augment_waveforms = step
elif mode == "save":  # half-way through writing the n-th last.pt, its first half already on disk
    import torch
    real_save = torch.save

    def save(obj, f, *a, **k):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{f.fileno()}")) if hasattr(f, "fileno") else ""
        if name.startswith(".last.pt."):
            count[0] += 1
            if count[0] == n:
                buf = io.BytesIO()
                real_save(obj, buf, *a, **k)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.fsync(f.fileno())
                die()
        return real_save(obj, f, *a, **k)

    torch.save = save
elif mode in ("chunk", "meta", "build"):  # a cache build: args = [cache_root, file list json]
    import audiomnist.cache as cache
    from audiomnist.audio import AudioConfig

    paths = json.loads(open(args[1]).read())
    cache.CHUNK = 8
    workers = 1
    if mode == "chunk":  # after n chunks were decoded into the temp array
        real_rows = cache._decode_rows

        def rows(*a, **k):
            count[0] += 1
            if count[0] > n:
                die()
            return real_rows(*a, **k)

        cache._decode_rows = rows
    elif mode == "meta":  # the array and index are in place, meta.json not yet written
        real_text = cache.atomic_write_text

        def text(path, content):
            if os.path.basename(path) == cache.META:
                die()
            return real_text(path, content)

        cache.atomic_write_text = text
    else:  # a parallel build slowed down, for a kill from outside
        workers = 2
        real_load = cache.load_audio

        def slow(*a, **k):
            time.sleep(0.02)
            return real_load(*a, **k)

        cache.load_audio = slow
    cache.WaveformCache.build(paths, "fp", AudioConfig(sample_rate=8000), cache_root=args[0], workers=workers,
                              progress=False)
    sys.exit(0)
from audiomnist.cli import main
sys.exit(main(args))
'''


@pytest.fixture(scope="module")
def killer(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("killer") / "killer.py"
    path.write_text(KILLER)
    return path


def killed(killer: Path, mode: str, n: int, args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(killer), mode, str(n), *args], env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def all_checkpoints_load(run_dir: Path) -> dict[str, dict]:
    states = {p.name: load_checkpoint(p) for p in run_dir.glob("*.pt")}
    assert "last.pt" in states
    return states


@needs_proc
@needs_sigkill
def test_sigkill_mid_epoch_then_resume_finishes_like_an_uninterrupted_run(corpus, killer, tmp_path):
    """Killed inside epoch 3, resumed, killed while writing epoch 4's last.pt, resumed: same result as one clean run."""
    args = ["train", "--data", str(corpus), *FAST, "--epochs", "5"]
    assert cli.main([*args, "--runs", str(tmp_path / "full")]) == 0
    (full,) = (tmp_path / "full").iterdir()

    steps = json.loads((full / "metrics.json").read_text())["split"]["train_clips"] // 16  # per epoch
    killed(killer, "step", 2 * steps + steps // 2 + 1, [*args, "--runs", str(tmp_path / "part")])  # inside epoch 3
    (part,) = (tmp_path / "part").iterdir()
    assert all_checkpoints_load(part)["last.pt"]["epoch"] == 1  # 0-based: epochs 1 and 2 were saved

    killed(killer, "save", 2, ["train", "--resume", str(part), "--no-progress"])  # dies writing epoch 4's last.pt
    states = all_checkpoints_load(part)
    assert states["last.pt"]["epoch"] == 2
    assert list(part.glob(".last.pt.*.tmp")), "the kill should have left a half-written temp file"

    assert cli.main(["train", "--resume", str(part), "--no-progress"]) == 0
    all_checkpoints_load(part)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3, 4, 5]
    for ha, hb in zip(a["history"], b["history"]):
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-4)
        assert hb["val_loss"] == pytest.approx(ha["val_loss"], rel=1e-4)
        assert hb["val_acc"] == pytest.approx(ha["val_acc"], abs=1e-6)
    assert b["test"]["accuracy"] == pytest.approx(a["test"]["accuracy"], abs=1e-6)
    assert b["test"]["macro_f1"] == pytest.approx(a["test"]["macro_f1"], abs=1e-6)


@pytest.fixture(scope="module")
def cache_job(corpus, tmp_path_factory) -> tuple[list[str], Path, WaveformCache]:
    """The corpus' files (bad ones included) and a reference cache built without interruption."""
    paths = [str(p) for p in find_audio([str(corpus)]) if p.stat().st_size < 2**20]
    listing = tmp_path_factory.mktemp("cache_job") / "paths.json"
    listing.write_text(json.dumps(paths))
    ref = WaveformCache.build(paths, "fp", AudioConfig(sample_rate=8000), cache_root=listing.parent / "ref", progress=False)
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
    proc = subprocess.Popen([sys.executable, str(killer), "build", "0", str(tmp_path), str(listing)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
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


# --- a live server under load ------------------------------------------------------------------------------------

LIMIT_BYTES = 256 * 1024
REQUESTS, CLIENTS = 2000, 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "audiomnist.cli", "serve", "--model", str(trained[0]), "--port",
                                 str(port), "--max-upload-mb", str(LIMIT_BYTES / 2**20), "--log-level", "warning"],
                                env=ENV, stdout=subprocess.DEVNULL, stderr=err)

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {log.read_text(errors='replace')}")
        time.sleep(0.2)
    yield url, proc, log
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def request_mix(corpus: Path, clf: Classifier) -> list[dict]:
    """Good clips (with the answer the model gives offline), malformed requests and oversized uploads, interleaved."""
    good = [corpus / sid / f"{d}_{sid}_0.wav" for sid in SPEAKERS[1:] for d in range(10)]
    good += [corpus / "01" / n for n in ODD if n != "3_01_62.wav"]
    kinds = [{"kind": "good", "name": p.name, "data": p.read_bytes(), "expect": 200,
              "probabilities": clf.predict_file(p).probabilities} for p in good]
    for name in BROKEN:
        kinds.append({"kind": "bad file", "name": name, "data": (corpus / "01" / name).read_bytes(),
                      "expect": 422 if BROKEN[name] in ("empty", "nan") else 415})
    big = io.BytesIO()
    sf.write(big, np.random.default_rng(0).normal(0, 0.1, LIMIT_BYTES // 2 + 1000), SR, format="WAV", subtype="PCM_16")
    kinds += [
        {"kind": "oversized", "name": "big.wav", "data": big.getvalue(), "expect": 413},
        {"kind": "oversized chunked", "name": "big.wav", "data": big.getvalue(), "expect": 413, "chunked": True},
        {"kind": "huge chunked", "name": "huge.wav", "data": bytes(8 * 2**20), "expect": 413, "chunked": True},
        {"kind": "no file field", "raw": multipart(b"x.wav", b"abc", field=b"other"), "expect": 422},
        {"kind": "not multipart", "raw": (b"RIFF....", {"content-type": "audio/wav"}), "expect": 415},
        {"kind": "broken multipart", "raw": (b"garbage", {"content-type": "multipart/form-data; boundary=xyz"}), "expect": 400},
    ]
    is_good = np.array([k["kind"] == "good" for k in kinds])
    p = np.where(is_good, 0.75 / is_good.sum(), 0.25 / (~is_good).sum())  # three good requests to one bad
    return [kinds[i] for i in np.random.default_rng(0).choice(len(kinds), REQUESTS, p=p)]


async def _send(client, url: str, item: dict):
    if "raw" in item:
        body, headers = item["raw"]
    else:
        body, headers = multipart(item["name"].encode(), item["data"])
    if item.get("chunked"):
        async def chunks(data=body):
            for i in range(0, len(data), 65536):
                yield data[i : i + 65536]

        return await client.post(url + "/predict", content=chunks(), headers=headers)
    return await client.post(url + "/predict", content=body, headers=headers)


async def _load(url: str, items: list[dict]) -> list:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for i, item in enumerate(items):
        queue.put_nowait((i, item))
    results: list = [None] * len(items)

    async def client_loop():
        async with httpx.AsyncClient(timeout=120) as client:
            while not queue.empty():
                i, item = queue.get_nowait()
                try:
                    results[i] = await _send(client, url, item)
                except httpx.TransportError as e:
                    results[i] = e

    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
    return results


@needs_proc
def test_server_under_load_answers_every_request(server, corpus, trained):
    url, proc, log = server
    clf = Classifier.load(trained[0])
    items = request_mix(corpus, clf)
    asyncio.run(_load(url, items[:100]))  # warm-up: first requests allocate the steady-state buffers
    rss = [rss_mb(proc.pid)]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.1):
            rss.append(rss_mb(proc.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        results = asyncio.run(_load(url, items))
    finally:
        stop.set()
        watcher.join()
    rss.append(rss_mb(proc.pid))

    failures = []
    for item, r in zip(items, results):
        if not hasattr(r, "status_code"):
            failures.append((item["kind"], repr(r)))
        elif r.status_code != item["expect"]:
            failures.append((item["kind"], r.status_code, r.text[:200]))
        elif item["kind"] == "good":
            body = r.json()
            if body["probabilities"] != pytest.approx(item["probabilities"], abs=1e-4) or body["filename"] != item["name"]:
                failures.append((item["kind"], item["name"], body))
        elif "name" in item and item["kind"] == "bad file" and item["name"] not in r.json()["detail"]:
            failures.append((item["kind"], item["name"], r.json()))
    statuses = [getattr(r, "status_code", 0) for r in results]
    print(f"{len(items)} requests, {CLIENTS} clients: statuses {dict(sorted(Counter(statuses).items()))}; "
          f"server RSS {rss[0]:.0f} MB after warm-up, peak {max(rss):.0f} MB, end {rss[-1]:.0f} MB")
    assert not [s for s in statuses if s >= 500], "server errors"
    assert not failures, failures[:10]
    assert sum(k["kind"] == "good" for k in items) > REQUESTS / 2 and sum(k["expect"] == 413 for k in items) > 50
    assert proc.poll() is None, "the server died"
    assert "Traceback" not in log.read_text(errors="replace")
    assert max(rss) - rss[0] < 150, f"server memory grew from {rss[0]:.0f} MB to a peak of {max(rss):.0f} MB"
