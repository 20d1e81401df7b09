"""Cold start: wall time of a fresh `audiomnist predict ONE.wav` process, torch checkpoint vs ONNX without torch.

    python benchmarks/bench_coldstart.py [--runs 7] [--wav PATH] [--only torch-free]
        [--torch-free-venv DIR] [--no-torch-python DIR/bin/python ...]

Each variant runs --runs times in a new process, after one untimed run (so the files are in the page cache), the
variants taking turns so that a change in the machine's load hits them alike. Wall time (best, median, max) and the
CPU time the process used (user + sys; less sensitive to other jobs on the machine) are reported, with the load
average before and after. Variants:
  torch        --backend torch: the shipped checkpoint, imports torch
  onnx         --model pretrained/default.onnx in this environment: torch is installed but never imported
  torch-free   the default model through the `audiomnist` script of a venv without torch: --torch-free-venv DIR,
               built there first with tools/torch_free_venv.py --compile if DIR is absent, and/or each
               --no-torch-python (e.g. venvs built from two commits, to compare them)
With --torch-free-venv the install sizes are printed too: du of DIR and of this environment (sys.prefix).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ONNX = SRC / "audiomnist" / "pretrained" / "default.onnx"
FSDD_CLIP = REPO.parent / "shared" / "data" / "fsdd" / "recordings" / "7_theo_0.wav"
VENV_TOOL = REPO / "tools" / "torch_free_venv.py"


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys) of one predict process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def torch_free_python(venv: Path) -> Path:
    if not venv.exists():
        subprocess.run([sys.executable, str(VENV_TOOL), str(venv), "--compile"], check=True, stdout=subprocess.DEVNULL)
    return venv / "bin" / "python"


def du(path: str | Path) -> str:
    return subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True).stdout.split("\t")[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--wav", type=Path, default=FSDD_CLIP)
    p.add_argument("--only", choices=["torch", "onnx", "torch-free"], action="append", help="these variants only")
    p.add_argument("--torch-free-venv", type=Path, help="a venv without torch; built here if absent")
    p.add_argument("--no-torch-python", type=Path, action="append", default=[], help="python of a venv without torch")
    args = p.parse_args()
    wav = str(args.wav)
    env = {**os.environ, "PYTHONPATH": str(SRC)}  # this checkout for the torch and onnx variants
    variants = {
        "torch": ([sys.executable, "-m", "audiomnist.cli", "predict", wav, "--backend", "torch"], env),
        "onnx": ([sys.executable, "-m", "audiomnist.cli", "predict", wav, "--model", str(ONNX)], env),
    }
    pythons = [torch_free_python(args.torch_free_venv)] if args.torch_free_venv else []
    pythons += args.no_torch_python
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # the venv's own copy
    for python in pythons:
        name = "torch-free" if len(pythons) == 1 else f"torch-free {python.parents[1]}"
        variants[name] = ([str(python.parent / "audiomnist"), "predict", wav], clean)
    if args.only:
        variants = {k: v for k, v in variants.items() if k.split()[0] in args.only}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "| variant | best wall s | median wall s | max wall s | median CPU s | runs |\n|---|---:|---:|---:|---:|---:|"
    )
    for cmd, cmd_env in variants.values():
        once(cmd, cmd_env)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, (cmd, cmd_env) in variants.items():
            runs[name].append(once(cmd, cmd_env))
    for name, timed in runs.items():
        walls = [w for w, _ in timed]
        cpu = statistics.median(c for _, c in timed)
        wall = f"{min(walls):.3f} | {statistics.median(walls):.3f} | {max(walls):.3f}"
        print(f"| {name} | {wall} | {cpu:.3f} | {args.runs} |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.torch_free_venv:
        sizes = f"torch-free venv {du(args.torch_free_venv)}, this environment ({sys.prefix}) {du(sys.prefix)}"
        print(f"install size: {sizes}")


if __name__ == "__main__":
    main()
