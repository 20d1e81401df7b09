"""The benchmarks side by side, in one run on the same data: the original project's data path vs this project's.

    python benchmarks/bench_all.py [--data PATH] [--subset N] [--baseline-items N] [--json OUT]   (make bench)

1. baseline: the original project's data path re-implemented with this project's libraries. Per item, every
   epoch: read the 48 kHz file, resample (none at 48 kHz), pad/trim to 1 s with noise, 64-mel spectrogram
   (n_fft 1024, hop 512) in dB, 2 frequency + 2 time masks at 10 %; batches of 16 normalised by their own
   statistics; seed-cnn and Adam. A torch DataLoader with --baseline-workers processes does the per-item work.
   It runs --baseline-items clips and its time per clip is extrapolated to the full epoch (the table says so).
2. ours: `train --preset v3` on the same files: the waveform cache is built cold (files/s), then train.fit runs
   one epoch (batched noise padding, log-mel and SpecAugment, seed-cnn, Adam, batch 16); only the epoch is timed.
3. the epoch-time ratio baseline/ours, each one's data path alone (no network), and each one's peak RSS (each
   pipeline runs in its own process).
4. inference latency p50/p99 of one corpus file to a digit (Classifier.predict_file, the shipped model, one thread)
   with PyTorch and ONNX Runtime, and the streaming real-time factor of `audiomnist listen --input` on a recording.

Without --data it uses /tmp/audiomnist-corpus (30,000 files), generating it first with ../shared/tools/make_corpus.py.
A full run on it (no --data, --subset or --only; CPU, batch 16) also writes benchmarks/results.json and
benchmarks/README.md's table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_cache import corpus, cpu_seconds  # noqa: E402

TARGET_RATIO = 10.0
TARGET_FILES_PER_S = 3000.0
README = HERE / "README.md"
RESULTS = HERE / "results.json"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


class PeakMemory:
    """Peak resident memory of this process: VmHWM at the end, plus the anonymous (non file-backed) peak, sampled.

    A memory-mapped cache counts in RSS as it is paged in; RssAnon leaves those reclaimable page-cache pages out.
    """

    def __init__(self, every: float = 0.05):
        self.every, self.peak_anon, self._stop = every, 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_anon = max(self.peak_anon, _status_kb("RssAnon"))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return {
            "peak_rss_mb": _status_kb("VmHWM") / 1024,
            "peak_anon_mb": self.peak_anon / 1024,
            "peak_child_rss_mb": children / 1024,
        }


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    if field == "VmHWM":
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return 0


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    mem = 0.0
    try:
        mem = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    except (OSError, AttributeError):
        pass
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gb": round(mem, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def select(root: Path, subset: int | None, seed: int = 0):
    """The catalog of `root`, cut to `subset` files drawn evenly at random (seeded) when given."""
    from audiomnist.catalog import scan
    from audiomnist.paths import short_hash

    catalog = scan(root, progress=False)
    if subset and subset < len(catalog.table):
        rows = np.sort(np.random.default_rng(seed).choice(len(catalog.table), subset, replace=False))
        table = catalog.table.iloc[rows].reset_index(drop=True)
        catalog = dataclasses.replace(catalog, table=table, fingerprint=short_hash(catalog.fingerprint, rows.tolist()))
    return catalog


def v3_config(root: Path):
    from audiomnist.runconfig import TrainConfig, with_preset

    return dataclasses.replace(with_preset(TrainConfig(), "v3"), data=(str(root),), split="random")


# --- 1. the original project's data path -------------------------------------------------------------------------


def original_dataset(paths: list[str], labels: np.ndarray, cfg):
    """The original per-item pipeline as a torch Dataset, its transforms built once as torchaudio modules would be."""
    import librosa
    import soundfile as sf
    import soxr
    import torch

    sr, n = cfg.audio.sample_rate, cfg.audio.num_samples
    f = cfg.features
    window = torch.hann_window(f.win_length)
    # torchaudio.transforms.MelSpectrogram defaults: HTK mel scale, no filter normalisation, reflect-padded STFT.
    fb = torch.from_numpy(
        librosa.filters.mel(sr=sr, n_fft=f.n_fft, n_mels=f.n_mels, fmin=0.0, htk=True, norm=None)
    ).float()
    freq_param = int(cfg.specaug.max_freq_frac * f.n_mels)
    time_param = int(cfg.specaug.max_time_frac * f.num_frames(n))

    def mask(spec: torch.Tensor, axis: int, param: int) -> torch.Tensor:
        """torchaudio FrequencyMasking/TimeMasking: one band of width U(0, param) at a uniform start, set to 0."""
        size = spec.shape[axis]
        width = int(torch.rand(()) * param)
        start = int(torch.rand(()) * (size - width))
        spec.narrow(axis, start, width).zero_()
        return spec

    class Original(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int):
            x, rate = sf.read(paths[i], dtype="float32", always_2d=True)
            wave = torch.from_numpy(np.ascontiguousarray(x.T))  # (channels, frames), as torchaudio.load returns
            if rate != sr:
                wave = torch.from_numpy(np.ascontiguousarray(soxr.resample(x, rate, sr).T))
            wave = wave[0]
            if len(wave) >= n:
                wave = wave[:n]
            else:
                edge = wave[: max(1, sr // 100)].abs().max()
                out = (torch.rand(n) * 2 - 1) * edge
                start = int(torch.rand(()) * (n - len(wave) + 1))
                out[start : start + len(wave)] = wave
                wave = out
            spec = (
                torch.stft(
                    wave,
                    f.n_fft,
                    f.hop_length,
                    f.win_length,
                    window,
                    center=True,
                    pad_mode="reflect",
                    return_complex=True,
                )
                .abs()
                .pow(2)
            )
            db = 10.0 * torch.log10(torch.clamp(fb @ spec, min=1e-10))  # AmplitudeToDB("power", top_db=None)
            for _ in range(cfg.specaug.freq_masks):
                db = mask(db, 0, freq_param)
            for _ in range(cfg.specaug.time_masks):
                db = mask(db, 1, time_param)
            return db.unsqueeze(0), int(labels[i])

    return Original()


def phase_baseline(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    from audiomnist import models

    root = corpus(args.data)
    catalog = select(root, args.subset)
    cfg = v3_config(root)
    device = torch.device(args.device)
    table = catalog.table
    n_epoch = len(table) // cfg.batch_size * cfg.batch_size
    items = min(args.baseline_items or len(table), len(table))
    items = max(cfg.batch_size, items // cfg.batch_size * cfg.batch_size)
    rows = np.sort(np.random.default_rng(1).choice(len(table), items, replace=False))
    paths = table["path"].iloc[rows].tolist()
    labels = table["digit"].to_numpy()[rows]
    torch.manual_seed(cfg.seed)
    net = models.create(cfg.model, 10).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loader = torch.utils.data.DataLoader(
        original_dataset(paths, labels, cfg),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.baseline_workers,
    )

    def normalised(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean()) / (x.std() + 1e-5)  # the original normalised each batch by its own statistics

    with PeakMemory() as mem:
        c0, t0 = cpu_seconds(), time.perf_counter()
        net.train()
        for x, y in loader:
            x, y = normalised(x).to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        synchronize(device)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        t0 = time.perf_counter()
        for x, _ in loader:
            normalised(x)
        data_s = time.perf_counter() - t0
    per_item = seconds / items
    return {
        "items": items,
        "epoch_items": n_epoch,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "s_per_item": per_item,
        "data_s_per_item": data_s / items,
        "epoch_seconds": per_item * n_epoch,
        "extrapolated": items < n_epoch,
        "workers": args.baseline_workers,
        "device": str(device),
        **mem.result(),
    }


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- 2. this project's pipeline ------------------------------------------------------------------------------------


def phase_ours(args: argparse.Namespace) -> dict:
    import torch

    from audiomnist import dataset, train
    from audiomnist.cache import WaveformCache
    from audiomnist.splits import Split

    root = corpus(args.data)
    work = Path(tempfile.mkdtemp(prefix="bench-all-"))
    os.environ["AUDIOMNIST_HOME"] = str(work / "home")
    try:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            catalog = select(root, args.subset)
            scan_s = time.perf_counter() - t0
            cfg = dataclasses.replace(
                v3_config(root), epochs=args.epochs, device=args.device, batch_size=args.ours_batch_size
            )
            c0, t0 = cpu_seconds(), time.perf_counter()
            cache = WaveformCache.for_catalog(catalog, cfg.audio, progress=False)
            build_s, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0
            t0 = time.perf_counter()
            cache = WaveformCache.for_catalog(catalog, cfg.audio, progress=False)
            load_s = time.perf_counter() - t0
            labels = catalog.table["digit"].to_numpy(dtype=np.int64).copy()
            labels[~cache.ok] = -1
            data = dataset.Data(catalog, cache, labels, dataset.class_names("digit"))
            empty = np.zeros(0, np.int64)
            split = Split(data.usable, empty, empty, "all")
            metrics = train.fit(cfg, data, split, work / "run", progress=False)
            data_s_per_item = data_path(cfg, data, split.train, torch.device(args.device))
        epochs = [h["seconds"] for h in metrics["history"]]
        files = len(catalog.table)
        n_epoch = len(split.train) // cfg.batch_size * cfg.batch_size
        return {
            "files": files,
            "scan_seconds": scan_s,
            "build_seconds": build_s,
            "build_files_per_s": files / build_s,
            "build_cores_busy": build_cpu / build_s,
            "warm_load_seconds": load_s,
            "decode_errors": len(cache.errors),
            "epoch_items": n_epoch,
            "epoch_seconds": min(epochs),
            "epoch_seconds_all": epochs,
            "s_per_item": min(epochs) / n_epoch,
            "data_s_per_item": data_s_per_item,
            "device": args.device,
            "batch_size": cfg.batch_size,
            "train_acc": metrics["history"][-1]["train_acc"],
            **mem.result(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def data_path(cfg, data, rows: np.ndarray, device, max_batches: int = 300) -> float:
    """Seconds per clip of fit's data path alone (cache batch, waveform augmentation, log-mel, SpecAugment)."""
    import torch

    from audiomnist.augment import augment_waveforms
    from audiomnist.features import build_frontend, spec_augment

    sr, bs = cfg.audio.sample_rate, cfg.batch_size
    frontend = build_frontend(cfg.features, sr).to(device)
    gen = torch.Generator().manual_seed(0)
    gen_dev = gen if device.type == "cpu" else torch.Generator(device).manual_seed(0)
    steps = min(max_batches, len(rows) // bs)
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(steps):
            wave = data.cache.batch(rows[b * bs : (b + 1) * bs], train=True, generator=gen)
            wave = augment_waveforms(wave, cfg.augment, sr, gen)
            spec_augment(frontend(wave.to(device)), cfg.specaug, gen_dev)
    synchronize(device)
    return (time.perf_counter() - t0) / max(1, steps * bs)


# --- 4. inference latency and streaming ----------------------------------------------------------------------------


def phase_infer(args: argparse.Namespace) -> dict:
    """Latency of one corpus file through Classifier.predict_file (bench_infer.py's measure) and the streaming RTF,
    on one CPU thread as `listen --threads 1` and a server worker run."""
    import torch

    torch.set_num_threads(1)
    root = corpus(args.data)
    clip = next(iter(audio_files(root)), None)
    if clip is None:
        return {"error": f"no audio files under {root}"}
    out: dict = {"clip": f"{clip.name} ({sf_rate(clip)} Hz), 1 thread"}
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        try:
            import bench_infer

            clfs = bench_infer.classifiers("default", Path(tmp))
        except Exception as e:  # a missing backend must not lose the rest of the benchmark
            clfs, out["error"] = {}, f"{type(e).__name__}: {e}"
        for backend, clf in clfs.items():
            try:
                out[backend] = bench_infer.time_file(clf, clip, args.latency_repeats, warmup=30)
                out[backend]["model"] = f"shipped {clf.cfg.model}, {clf.sample_rate} Hz"
            except Exception as e:
                out[backend] = {"error": f"{type(e).__name__}: {e}"}
        try:
            out["stream"] = streaming_rtf(Path(tmp), root)
        except Exception as e:
            out["stream"] = {"error": f"{type(e).__name__}: {e}"}
    return out


def audio_files(root: Path) -> list[Path]:
    from audiomnist.infer import find_audio

    return find_audio([str(root)])


def sf_rate(path: Path) -> int:
    import soundfile as sf

    return sf.info(path).samplerate


def digit_recording(root: Path, out: Path, seconds: float, gap_s: float = 0.6, seed: int = 0) -> tuple[Path, int]:
    """A WAV of corpus clips separated by quiet pauses (low noise), like someone saying digits one by one."""
    import soundfile as sf

    files = audio_files(root)
    rng = np.random.default_rng(seed)
    parts, total, n, sr = [], 0, 0, None
    while sr is None or total < seconds * sr:
        x, rate = sf.read(files[rng.integers(len(files))], dtype="float32", always_2d=True)
        sr = sr or rate
        if rate != sr:
            continue
        gap = rng.normal(0, 1e-3, int(gap_s * sr)).astype(np.float32)
        parts += [gap, x.mean(axis=1)]
        total += len(gap) + len(x)
        n += 1
    parts.append(np.zeros(int(gap_s * sr), np.float32))
    sf.write(out, np.concatenate(parts), sr, subtype="PCM_16")
    return out, n


def streaming_rtf(work: Path, root: Path, seconds: float = 60.0) -> dict:
    """Real-time factor (processing time / audio duration) of `audiomnist listen --input`: the live streaming path
    (100 ms blocks -> streaming resampler -> VAD -> classifier) on a recording of corpus digits, best of 3."""
    import soundfile as sf

    from audiomnist.infer import Classifier
    from audiomnist.stream import transcribe_file

    path, said = digit_recording(root, work / "digits.wav", seconds)
    duration = sf.info(path).duration
    clf = Classifier.load()
    list(transcribe_file(path, clf))  # warm-up: first calls of the network and the resampler
    took = []
    for _ in range(3):
        t0 = time.perf_counter()
        heard = list(transcribe_file(path, clf))
        took.append(time.perf_counter() - t0)
    return {
        "rtf": min(took) / duration,
        "audio_seconds": duration,
        "seconds": min(took),
        "digits_said": said,
        "digits_heard": len(heard),
        "detail": f"{duration:.0f} s at {sf.info(path).samplerate} Hz, {said} digits said, {len(heard)} heard",
    }


# --- driver ----------------------------------------------------------------------------------------------------


PHASES = {"baseline": phase_baseline, "ours": phase_ours, "infer": phase_infer}


def run_phase(name: str, args: argparse.Namespace, argv: list[str]) -> dict:
    """Each phase in its own process, so peak memory is its own and one pipeline never warms the other's heap."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        print(f"[{name}] running ...", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, *argv, "--phase", name, "--phase-out", str(out)])
        if proc.returncode != 0:
            return {"error": f"phase {name} exited with status {proc.returncode}"}
        result = json.loads(out.read_text())
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", flush=True)
        return result
    finally:
        out.unlink(missing_ok=True)


def table(r: dict) -> str:
    b, o, inf = r["baseline"], r["ours"], r["infer"]
    ratio = r.get("ratio")
    lines = ["| measure | baseline (original data path) | ours | target |", "|---|---|---|---|"]
    if "error" in b or "error" in o:
        lines.append(f"| error | {b.get('error', '')} | {o.get('error', '')} | |")
    else:
        how = (
            f"{b['epoch_seconds']:.1f} s (extrapolated from {b['items']:,} clips)"
            if b["extrapolated"]
            else f"{b['epoch_seconds']:.1f} s"
        )
        lines += [
            f"| epoch: {o['epoch_items']:,} clips, seed-cnn on {o['device']}, batch 16 (ours: {o['batch_size']}) "
            f"| {how}, "
            f"{b['workers']} loader workers | {o['epoch_seconds']:.1f} s | |",
            f"| epoch ratio baseline/ours | | **{ratio:.1f}x** | >= {TARGET_RATIO:.0f}x |",
            f"| per clip: whole step | {b['s_per_item'] * 1e3:.2f} ms | {o['s_per_item'] * 1e3:.2f} ms | |",
            f"| per clip: data path alone (no network) | {b['data_s_per_item'] * 1e3:.2f} ms | "
            f"{o['data_s_per_item'] * 1e3:.2f} ms | |",
            f"| cache build (cold, {o['files']:,} files) | none: decodes every file every epoch | "
            f"**{o['build_files_per_s']:,.0f} files/s** ({o['build_seconds']:.1f} s) | >= "
            f"{TARGET_FILES_PER_S:,.0f} files/s |",
            f"| peak RSS of the main process (anonymous part) | {b['peak_rss_mb']:,.0f} MB "
            f"({b['peak_anon_mb']:,.0f} MB); "
            f"each loader worker up to {b['peak_child_rss_mb']:,.0f} MB | {o['peak_rss_mb']:,.0f} MB "
            f"({o['peak_anon_mb']:,.0f} MB); each cache-build worker up to {o['peak_child_rss_mb']:,.0f} MB | |",
        ]
    for backend, label in (("pytorch", "PyTorch"), ("onnx", "ONNX Runtime")):
        v = inf.get(backend, {})
        cell = (
            f"{v['p50_ms']:.2f} / {v['p99_ms']:.2f} ms ({v['model']})"
            if "p50_ms" in v
            else f"n/a ({v.get('error', inf.get('error', ''))})"
        )
        lines.append(f"| latency p50 / p99, file to digit, {label}, 1 thread | | {cell} | |")
    s = inf.get("stream", {})
    cell = f"{s['rtf']:.3f} ({s.get('detail', '')})" if "rtf" in s else f"n/a ({s.get('error', inf.get('error', ''))})"
    lines.append(f"| streaming real-time factor | | {cell} | < 1 |")
    return "\n".join(lines)


def write_readme(md: str, r: dict) -> None:
    m = r["machine"]
    block = (
        f"{START}\nLatest full run ({r['date']}, `{r['command']}`) on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB RAM, {m['os']}, Python {m['python']}, torch {m['torch']} "
        f"(load average {m['load_average_at_start']} at the start):\n\n{md}\n{END}"
    )
    text = README.read_text() if README.is_file() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="AudioMNIST-layout folder (default: /tmp/audiomnist-corpus, generated if absent)")
    ap.add_argument("--subset", type=int, help="use only N files (drawn at random, seeded) for a quick run")
    ap.add_argument(
        "--baseline-items",
        type=int,
        default=4000,
        help="clips the baseline really processes; its time is extrapolated to the epoch (0: the whole epoch)",
    )
    ap.add_argument(
        "--baseline-workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="DataLoader worker processes of the baseline (default: up to 2)",
    )
    ap.add_argument("--epochs", type=int, default=1, help="epochs of our pipeline (the fastest is reported)")
    ap.add_argument(
        "--ours-batch-size",
        type=int,
        default=16,
        help="batch size of our pipeline (default 16, the baseline's); the table names it",
    )
    ap.add_argument("--latency-repeats", type=int, default=300)
    ap.add_argument(
        "--threads", type=int, help="torch threads of the training parts (default: torch's own, one per core)"
    )
    ap.add_argument("--device", default="cpu", help="where both pipelines run the network: cpu (default), cuda, ...")
    ap.add_argument("--only", choices=list(PHASES), action="append", help="run only these parts")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        elif args.phase == "baseline" and args.baseline_workers:  # generous: no oversubscription with its workers
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) - args.baseline_workers))
        result = {**PHASES[args.phase](args), "torch_threads": torch.get_num_threads()}
        args.phase_out.write_text(json.dumps(result))
        return

    argv = list(sys.argv[1:])
    root = corpus(args.data)  # generate once here, not in each phase
    if not args.data:
        argv += ["--data", str(root)]
    r = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/bench_all.py " + " ".join(sys.argv[1:]),
        "data": str(root),
        "machine": machine(),
    }
    print(
        f"data: {root}; {r['machine']['cpu']}, {r['machine']['cores']} cores, load average "
        f"{r['machine']['load_average_at_start']}",
        flush=True,
    )
    t0 = time.perf_counter()
    for name in PHASES:
        r[name] = run_phase(name, args, argv) if not args.only or name in args.only else {"error": "not run"}
    b, o = r["baseline"], r["ours"]
    r["ratio"] = b["epoch_seconds"] / o["epoch_seconds"] if "epoch_seconds" in b and "epoch_seconds" in o else None
    r["total_seconds"] = time.perf_counter() - t0
    md = table(r)
    print()
    print(md)
    print()
    print(json.dumps(r, indent=2))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    if not args.subset and not args.only and not args.data and args.device == "cpu" and args.ours_batch_size == 16:
        RESULTS.write_text(json.dumps(r, indent=2) + "\n")
        write_readme(md, r)
        print(f"\nwrote {RESULTS} and the table in {README}")


if __name__ == "__main__":
    main()
