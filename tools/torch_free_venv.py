"""Build the inference install in a new venv: `pip install audiomnist` as a user gets it, base dependencies only, so
no torch. Used by tests/test_torch_free_venv.py (CI) and benchmarks/bench_coldstart.py (cold start, install size).

    python tools/torch_free_venv.py DIR [--compile] [--index-timeout 10]

Steps, each timed on stderr:
  1. probe the package index (PIP_INDEX_URL, default PyPI); unreachable: exit 3 with the reason, nothing built;
  2. `python -m venv --without-pip DIR` (no ensurepip: this interpreter's pip installs into it with --python);
  3. a wheel of the project, built from a copy of pyproject.toml, README.md, LICENSE and src/ (the checkout is not
     written to), without build isolation where this interpreter has setuptools >= 77, else with it;
  4. `pip --python DIR/bin/python install --no-compile WHEEL`: pip resolves the base dependencies from the wheel's
     own metadata, from the index or pip's cache. --compile writes the .pyc files as a plain `pip install` does
     (a few seconds more; benchmarks want it: without .pyc, and with PYTHONDONTWRITEBYTECODE set, every start
     compiles numpy again).
Prints DIR's python on stdout. DIR must not exist or be empty.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INDEX = "https://pypi.org/simple/"
UNREACHABLE = 3  # exit status when the index cannot be reached: the caller skips rather than fails
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")


def index_problem(timeout: float) -> str | None:
    """Why the package index cannot be reached (None when it answers): one GET of its numpy page."""
    index = os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX).rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/numpy/", timeout=timeout) as r:
            r.read(1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{index} unreachable ({getattr(e, 'reason', e)})"
    return None


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    # The venv's interpreter must see only itself: with this checkout's src/ on PYTHONPATH, pip would take the
    # project as already installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def can_build_here() -> bool:
    """Whether this interpreter can build the wheel itself (pyproject's build-system: setuptools >= 77)."""
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except (metadata.PackageNotFoundError, ValueError):
        return False


def build_wheel(dest: Path) -> Path:
    """The project's wheel, built from a copy of its sources (setuptools writes build/ and egg-info beside them)."""
    with tempfile.TemporaryDirectory(prefix="audiomnist-src-") as tmp:
        copy = Path(tmp) / "audiomnist"
        copy.mkdir()
        for name in PROJECT_FILES:
            shutil.copy2(REPO / name, copy / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        shutil.copytree(REPO / "src", copy / "src", ignore=ignore)
        isolation = ["--no-build-isolation"] if can_build_here() else []
        pip("wheel", "-q", "--no-deps", *isolation, "-w", str(dest), str(copy))
    (wheel,) = dest.glob("audiomnist-*.whl")
    return wheel


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path)
    p.add_argument("--compile", action="store_true", help="byte-compile what is installed, as pip does by default")
    p.add_argument("--index-timeout", type=float, default=10.0, help="seconds to wait for the index (default 10)")
    args = p.parse_args()
    if args.dir.exists() and any(args.dir.iterdir()):
        p.error(f"{args.dir}: exists and is not empty")
    t0 = time.perf_counter()

    def step(name: str) -> None:
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    problem = index_problem(args.index_timeout)
    if problem:
        print(problem, file=sys.stderr)
        return UNREACHABLE
    step("index reachable")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(args.dir)], check=True)
    python = args.dir / "bin" / "python"
    step("venv")
    with tempfile.TemporaryDirectory(prefix="audiomnist-wheel-") as dist:
        wheel = build_wheel(Path(dist))
        step(f"wheel {wheel.name}")
        compile_ = [] if args.compile else ["--no-compile"]
        pip("--python", str(python), "install", "-q", *compile_, "--retries", "2", "--timeout", "60", str(wheel))
    step("installed")
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
