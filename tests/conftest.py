"""Shared test fixtures: where ../shared lives, and a private AUDIOMNIST_HOME per test session."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))
FSDD = SHARED / "data" / "fsdd" / "recordings"
AUDIOMNIST_META = SHARED / "data" / "audiomnist" / "audioMNIST_meta.txt"


@pytest.fixture(autouse=True, scope="session")
def _private_home(tmp_path_factory):
    """Keep catalogs and caches of the test run out of the user's ~/.cache/audiomnist."""
    home = tmp_path_factory.mktemp("audiomnist_home")
    old = os.environ.get("AUDIOMNIST_HOME")
    os.environ["AUDIOMNIST_HOME"] = str(home)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield home
    if old is None:
        os.environ.pop("AUDIOMNIST_HOME", None)
    else:
        os.environ["AUDIOMNIST_HOME"] = old


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD} (the ../shared folder is absent)")
    return FSDD


@pytest.fixture(scope="session")
def audiomnist_meta() -> Path:
    if not AUDIOMNIST_META.is_file():
        pytest.skip(f"real AudioMNIST metadata not found at {AUDIOMNIST_META} (the ../shared folder is absent)")
    return AUDIOMNIST_META


# ---- helpers shared by several test files ---------------------------------------------------------------------------

SR = 8000
# A few epochs of the default network at width 1: enough for the tone sets below to be learnt, quick on two cores.
FAST_TRAIN = ["--epochs", "3", "--batch-size", "16", "--no-progress", "--model-arg", "width=1"]
# Subprocesses on one thread: the same arithmetic as the test process under one_thread, no spinning on a busy machine.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def tone_digit(
    digit: int,
    speaker: int,
    rep: int,
    sr: int = SR,
    noise: float = 0.005,
    lead_s: tuple[float, float] = (0.0, 0.1),
    tail_s: float = 0.0,
) -> np.ndarray:
    """A 'spoken digit' a small net can learn: a two-tone chord whose pitch encodes the digit, shifted per speaker,
    0.35-0.6 s long, after a random stretch of silence; deterministic in (speaker, digit, rep)."""
    rng = np.random.default_rng(1000 * speaker + 10 * digit + rep)
    n = int(sr * rng.uniform(0.35, 0.6))
    t = np.arange(n) / sr
    f0 = 300 + 220 * digit * (1 + 0.02 * speaker)
    x = (0.4 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)) * np.hanning(n)
    lead = int(rng.uniform(*lead_s) * sr) if lead_s[1] > 0 else 0
    x = np.concatenate([np.zeros(lead), x, np.zeros(int(tail_s * sr))])
    return (x + rng.normal(0, noise, len(x))).astype(np.float32)


def write_tone_set(root: Path, speakers: int, reps: int, speaker_offset: int = 0, **tone_kw) -> Path:
    """AudioMNIST layout: speakers 01.. x 10 digits x reps tone clips (16-bit WAV)."""
    for s in range(1, speakers + 1):
        sid = f"{s:02d}"
        (root / sid).mkdir(parents=True, exist_ok=True)
        for d in range(10):
            for r in range(reps):
                clip = tone_digit(d, speaker_offset + s, r, **tone_kw)
                sf.write(root / sid / f"{d}_{sid}_{r}.wav", clip, SR, subtype="PCM_16")
    return root


def write_negatives(root: Path, speakers: int = 5, clips: int = 4) -> Path:
    """Noise bursts named like FSDD digits ('7_neg3_1.wav') for --negative folders: the name's digit means nothing."""
    root.mkdir(parents=True, exist_ok=True)
    for s in range(speakers):
        rng = np.random.default_rng(s)
        for i in range(clips):
            x = 0.3 * rng.standard_normal(int(0.5 * SR)).astype(np.float32)
            sf.write(root / f"{(s + i) % 10}_neg{s}_{i}.wav", x, SR, subtype="PCM_16")
    return root


def load_tool(name: str):
    """tools/NAME.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module's tests (see ONE_THREAD_ENV)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- a corpus of bad and odd files, and a model trained on it (the reliability tests of every stage) ---------------

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
GOOD = sorted(
    [f"{sid}/{d}_{sid}_{r}.wav" for sid in SPEAKERS for d in range(10) for r in range(2)] + [f"01/{n}" for n in ODD]
)
FAST = [*FAST_TRAIN, "--seed", "3"]


def bad_tone(digit: int, speaker: int, rep: int) -> np.ndarray:
    """The bad corpus' tone: a little quieter noise, and silence after the chord too."""
    return tone_digit(digit, speaker, rep, noise=0.003, lead_s=(0.02, 0.1), tail_s=0.05)


def write_bad_corpus(root: Path) -> None:
    """AudioMNIST layout: 4 speakers x 10 digits x 2 tones, plus every kind of bad or odd file in speaker 01."""
    for s, sid in enumerate(SPEAKERS, 1):
        (root / sid).mkdir(parents=True)
        for d in range(10):
            for r in range(2):
                sf.write(root / sid / f"{d}_{sid}_{r}.wav", bad_tone(d, s, r), SR, subtype="PCM_16")
    d = root / "01"
    wav = io.BytesIO()
    sf.write(wav, bad_tone(1, 1, 50), SR, format="WAV", subtype="PCM_16")
    (d / "1_01_50.wav").write_bytes(wav.getvalue()[:30])
    (d / "2_01_51.wav").write_bytes(b"")
    (d / "3_01_52.wav").write_text("this is a text file, not audio\n")
    sf.write(d / "4_01_53.wav", bad_tone(4, 1, 53), SR, subtype="PCM_U8")
    sf.write(d / "5_01_54.wav", bad_tone(5, 1, 54), SR, subtype="PCM_24")
    sf.write(d / "6_01_55.wav", bad_tone(6, 1, 55), SR, subtype="FLOAT")
    x = bad_tone(7, 1, 56)
    sf.write(d / "7_01_56.wav", np.stack([x, 0.5 * x], axis=1), SR, subtype="PCM_16")
    sf.write(d / "8_01_57.wav", soxr.resample(bad_tone(8, 1, 57), SR, 96000), 96000, subtype="PCM_16")
    sf.write(d / "9_01_58.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    for name, value, rep in (("0_01_59.wav", np.nan, 59), ("1_01_60.wav", np.inf, 60)):
        x = bad_tone(int(name[0]), 1, rep)
        x[len(x) // 2] = value
        sf.write(d / name, x, SR, subtype="FLOAT")
    long = np.random.default_rng(7).normal(0, 0.003, 600 * SR).astype(np.float32)  # 10 minutes, a word at 5 s
    word = bad_tone(3, 1, 62)
    long[5 * SR : 5 * SR + len(word)] += word
    sf.write(d / "3_01_62.wav", long, SR, subtype="PCM_16")
    sf.write(d / UNLABELLED, bad_tone(2, 1, 61), SR, subtype="PCM_16")
    (d / NON_UTF8).write_bytes((root / "02" / "4_02_0.wav").read_bytes())
    os.symlink("..", d / "loop")  # 01/loop -> the dataset root: a cycle


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_corpus")
    write_bad_corpus(root)
    return root


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory) -> tuple[Path, str]:
    """A tiny model trained on the bad corpus in its own process, with everything the run printed."""
    runs = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(
        [sys.executable, "-m", "audiomnist.cli", "train", "--data", str(corpus), "--runs", str(runs), *FAST],
        env=ONE_THREAD_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir, proc.stdout + proc.stderr


def mentioning(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if name in line]


# A script that runs `audiomnist` (or a cache build) and SIGKILLs itself at a chosen point.
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


@pytest.fixture(scope="session")
def killer(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("killer") / "killer.py"
    path.write_text(KILLER)
    return path


def killed(killer: Path, mode: str, n: int, args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(killer), mode, str(n), *args],
        env=ONE_THREAD_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").is_file(), reason="needs Linux /proc (memory, open files)"
)
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _untrained_string_model(folder: Path, **fields) -> tuple[Path, Path]:
    import torch

    from audiomnist.checkpoint import save_checkpoint
    from audiomnist.config import to_dict
    from audiomnist.ctc import STRING_CLASSES
    from audiomnist.export import export_string_onnx
    from audiomnist.string_model import StringTrainConfig, build

    cfg = StringTrainConfig(**fields)
    torch.manual_seed(0)
    net = build(cfg).eval()
    state = {"task": "strings", "model": net.state_dict(), "classes": STRING_CLASSES, "config": to_dict(cfg)}
    save_checkpoint({**state, "epoch": 0}, folder / "best.pt")
    (folder / "config.json").write_text(json.dumps(to_dict(cfg)))
    return folder / "best.pt", export_string_onnx(net, cfg, folder / "strings.onnx")


@pytest.fixture(scope="session")
def string_model(tmp_path_factory) -> tuple[Path, Path]:
    """An untrained, small digit-string model: (checkpoint, its .onnx export). For interfaces, not for accuracy."""
    return _untrained_string_model(tmp_path_factory.mktemp("string_model"), model_args={"channels": 16, "blocks": 2})


@pytest.fixture(scope="session")
def emb_string_model(tmp_path_factory) -> tuple[Path, Path]:
    """The same for an untrained emb-ctc head on the speech_embedding encoder."""
    from audiomnist.features import FeatureConfig

    folder = tmp_path_factory.mktemp("emb_string_model")
    return _untrained_string_model(folder, model="emb-ctc", features=FeatureConfig(kind="speech_embedding"))


@pytest.fixture(scope="session")
def emb2_string_model(tmp_path_factory) -> tuple[Path, Path]:
    """The same with two outputs per encoder vector (40 ms frames)."""
    from audiomnist.features import FeatureConfig

    folder = tmp_path_factory.mktemp("emb2_string_model")
    return _untrained_string_model(folder, model="emb-ctc", features=FeatureConfig(kind="speech_embedding"),
                                   model_args={"outputs_per_vector": 2})  # fmt: skip


def reject_checkpoint(path: Path, none_bias: float = 0.0, **extra) -> Path:
    """An untrained default network (width 1) with the 'none' class as an 11th output, saved as a checkpoint;
    `none_bias` is added to the none logit (large: 'none' always wins), `extra` goes into the checkpoint
    (temperature=...)."""
    import torch

    from audiomnist.checkpoint import save_checkpoint
    from audiomnist.config import to_dict
    from audiomnist.runconfig import TrainConfig, build_model

    cfg = TrainConfig(model_args={"width": 1})
    torch.manual_seed(0)
    state = build_model(cfg, 11).state_dict()
    state["classifier.bias"][10] += none_bias
    classes = [str(d) for d in range(10)] + ["none"]
    save_checkpoint({"model": state, "classes": classes, "config": to_dict(cfg), **extra}, path)
    return path


# ---- ffmpeg stand-ins: a test decides whether the program is there and what it gives --------------------------------

FAKE_FFMPEG_RATE = 8000
FAKE_FFMPEG = f"""#!{sys.executable}
# Stands in for ffmpeg: its input is b"FAKE" + raw float32 samples at {FAKE_FFMPEG_RATE} Hz, its output a float WAV.
import io, sys
import numpy as np, soundfile as sf
args = sys.argv[1:]
name = args[args.index("-i") + 1]
data = sys.stdin.buffer.read() if name == "pipe:0" else open(name.removeprefix("file:"), "rb").read()
if not data.startswith(b"FAKE"):
    sys.exit(f"{{name}}: Invalid data found when processing input")
x = np.frombuffer(data[4:], np.float32)
if "-t" in args:
    x = x[: int(float(args[args.index("-t") + 1]) * {FAKE_FFMPEG_RATE})]
out = io.BytesIO()
sf.write(out, np.stack([x, x], axis=1), {FAKE_FFMPEG_RATE}, format="WAV", subtype="FLOAT")
sys.stdout.buffer.write(out.getvalue())
"""


def fake_encoded(x: np.ndarray) -> bytes:
    """What the fake ffmpeg decodes to x (two equal channels at FAKE_FFMPEG_RATE)."""
    return b"FAKE" + np.asarray(x, np.float32).tobytes()


@pytest.fixture
def fake_ffmpeg(tmp_path, monkeypatch) -> Path:
    """decode.FFMPEG pointed at the stand-in above."""
    from audiomnist import decode

    exe = tmp_path / "fake-ffmpeg"
    exe.write_text(FAKE_FFMPEG)
    exe.chmod(0o755)
    monkeypatch.setattr(decode, "FFMPEG", str(exe))
    return exe


@pytest.fixture
def no_ffmpeg(monkeypatch) -> None:
    """As where ffmpeg is not installed."""
    from audiomnist import decode

    monkeypatch.setattr(decode, "FFMPEG", "audiomnist-test-no-such-ffmpeg")
