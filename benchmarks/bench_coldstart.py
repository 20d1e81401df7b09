"""Cold start: wall time of a fresh `audiomnist predict ONE.wav` process, torch checkpoint vs ONNX without torch.

    python benchmarks/bench_coldstart.py [--runs 7] [--wav PATH] [--no-torch-python /tmp/noTorch/bin/python]

Each variant runs --runs times in a new interpreter (after one untimed run, so the files are in the page cache);
the median wall time is reported. Variants:
  torch        --backend torch: the shipped checkpoint, imports torch
  onnx         --model pretrained/default.onnx in the same environment: torch is installed but never imported
  torch-free   the default model in a venv without torch (--no-torch-python; numpy, soundfile, soxr, onnxruntime)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ONNX = SRC / "audiomnist" / "pretrained" / "default.onnx"
FSDD_CLIP = REPO.parent / "shared" / "data" / "fsdd" / "recordings" / "7_theo_0.wav"


def once(python: str, args: list[str]) -> float:
    """Wall seconds of one predict process."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    t = time.perf_counter()
    done = subprocess.run([python, "-m", "audiomnist.cli", "predict", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{python} predict {args} failed:\n{done.stderr}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--wav", type=Path, default=FSDD_CLIP)
    p.add_argument(
        "--no-torch-python", help="python of a venv without torch (pip install numpy soundfile soxr onnxruntime)"
    )
    args = p.parse_args()
    wav = str(args.wav)
    variants = {
        "torch": (sys.executable, [wav, "--backend", "torch"]),
        "onnx": (sys.executable, [wav, "--model", str(ONNX)]),
    }
    if args.no_torch_python:
        variants["torch-free"] = (args.no_torch_python, [wav])
    print("| variant | median s | min s | max s | runs |\n|---|---:|---:|---:|---:|")
    for name, (python, argv) in variants.items():
        once(python, argv)
        walls = [once(python, argv) for _ in range(args.runs)]
        print(
            f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {max(walls):.2f} | {args.runs} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
