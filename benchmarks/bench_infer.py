"""Single-clip latency from WAV file to digit on one CPU thread, PyTorch and ONNX Runtime: p50 and p99.

    python benchmarks/bench_infer.py [--runs 300] [--warmup 30] [--models seed-cnn default] [--wav PATH] [--json OUT]

Each timed call is Classifier.predict_file: read and decode the file, resample when it is not at the model's rate,
crop and centre the 1 s window, front-end, network, softmax (for ONNX Runtime the whole-pipeline export, front-end
included in the graph). seed-cnn is untrained (latency does not depend on the
weights); "default" is the shipped model. The clip is an FSDD recording (8 kHz, the models' rate) when ../shared is
there, else a generated one, plus the same clip at 48 kHz to show the cost of resampling. Stage columns are
medians of the same runs timed stage by stage: decoding + window placement (numpy) and the model (front-end,
network, softmax). Targets (issue 5): p50 <= 3 ms for seed-cnn, <= 10 ms for default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiomnist import models
from audiomnist.export import export_onnx
from audiomnist.infer import Classifier
from audiomnist.runconfig import TrainConfig
from audiomnist.torch_infer import TorchPipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))
FSDD_CLIP = SHARED / "data" / "fsdd" / "recordings" / "7_theo_0.wav"
CLASSES = [str(d) for d in range(10)]


def classifiers(name: str, folder: Path) -> dict[str, Classifier]:
    """PyTorch and ONNX Runtime (1 intra-op thread) classifiers of one network: shipped or untrained."""
    if name in models.available():
        torch.manual_seed(0)
        cfg = TrainConfig(model=name)
        clf = Classifier(TorchPipeline(models.create(name, len(CLASSES)), cfg), cfg, CLASSES, "torch")
    else:
        clf = Classifier.load(name, backend="torch")
    path = export_onnx(clf.pipeline.net, clf.cfg, clf.classes, folder / f"{name}.onnx")
    return {"pytorch": clf, "onnx": Classifier.load(path, threads=1)}


def time_file(clf: Classifier, wav: Path, runs: int, warmup: int) -> dict:
    """Latency percentiles of predict_file (ms), and per-stage medians from separately timed runs."""
    for _ in range(warmup):
        clf.predict_file(wav)
    total = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        clf.predict_file(wav)
        total[i] = time.perf_counter() - t
    stages = np.empty((runs, 2))
    for i in range(runs):
        t0 = time.perf_counter()
        waves = clf.windows([clf.load_file(wav)])
        t1 = time.perf_counter()
        clf.probabilities(waves)
        stages[i] = (t1 - t0, time.perf_counter() - t1)
    ms = 1e3
    return {
        "p50_ms": float(np.percentile(total, 50) * ms),
        "p99_ms": float(np.percentile(total, 99) * ms),
        "mean_ms": float(total.mean() * ms),
        "decode_window_ms": float(np.median(stages[:, 0]) * ms),
        "model_ms": float(np.median(stages[:, 1]) * ms),
        "input_shape": list(waves.shape),
    }


def clips(folder: Path, wav: Path | None) -> dict[str, Path]:
    """The benchmark's input files: the clip at its own rate and the same clip resampled to 48 kHz."""
    if wav is None and FSDD_CLIP.is_file():
        wav = FSDD_CLIP
    if wav is None:
        t = np.arange(4000) / 8000
        x = (0.3 * np.sin(2 * np.pi * 180 * t * (1 + t)) * np.hanning(len(t))).astype(np.float32)
        wav = folder / "generated_8k.wav"
        sf.write(wav, x, 8000, subtype="PCM_16")
    x, sr = sf.read(wav, dtype="float32")
    hi = folder / "clip_48k.wav"
    sf.write(hi, soxr.resample(x, sr, 48000), 48000, subtype="PCM_16")
    return {f"{wav.name} ({sr // 1000} kHz)": wav, "same at 48 kHz": hi}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument(
        "--models",
        nargs="+",
        default=["seed-cnn", "default"],
        help="registered names (untrained) or shipped/run models",
    )
    p.add_argument("--wav", type=Path, help="clip to time (default: an FSDD recording, else a generated one)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = clips(Path(tmp), args.wav)
        for name in args.models:
            for backend, clf in classifiers(name, Path(tmp)).items():
                for label, wav in inputs.items():
                    r = time_file(clf, wav, args.runs, args.warmup)
                    results.append({"model": name, "backend": backend, "input": label, **r})
                    print(
                        f"{name:10s} {backend:8s} {label:28s} p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms",
                        flush=True,
                    )
    print()
    print(
        f"Single clip, WAV file -> digit, 1 CPU thread ({platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, "
        f"{args.runs} runs after {args.warmup} warm-up)"
    )
    print()
    print("| model | backend | input | p50 ms | p99 ms | mean ms | decode+window | front-end+network |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['model']} | {r['backend']} | {r['input']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['mean_ms']:.2f} | "
            f"{r['decode_window_ms']:.2f} | {r['model_ms']:.2f} |"
        )
    report = {"runs": args.runs, "warmup": args.warmup, "threads": 1, "torch": torch.__version__, "results": results}
    print()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
