"""Server throughput: `audiomnist serve` with the shipped model on loopback, concurrent clients posting real clips.

    python benchmarks/bench_serve.py [--clients 8] [--seconds 10] [--data FOLDER] [--backend torch|onnx] [--model SPEC]
                                     [--threads 1]

Each client is a thread with its own keep-alive httpx connection that posts clips round-robin until time is up.
Clips come from ../shared/data/fsdd/recordings when present, else the shipped sample folder. Prints a markdown
table (requests/s, client-side latency percentiles, errors, answers matching the digit in the file name) and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from audiomnist.catalog import sample_root

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))


def clips(data: str | None, limit: int) -> list[tuple[str, bytes]]:
    root = Path(data) if data else SHARED / "data" / "fsdd" / "recordings"
    if not root.is_dir():
        root = sample_root()
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    step = max(1, len(paths) // limit)
    return [(p.name, p.read_bytes()) for p in paths[::step][:limit]]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "audiomnist.cli",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--backend",
        args.backend,
        "--threads",
        str(args.threads),
    ]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("server did not start within 120 s")


def client(url: str, items: list[tuple[str, bytes]], offset: int, stop: float, out: list) -> None:
    with httpx.Client(base_url=url, timeout=60) as c:
        i = offset
        while time.perf_counter() < stop:
            name, data = items[i % len(items)]
            i += 1
            t = time.perf_counter()
            try:
                r = c.post("/predict", files={"file": (name, data, "audio/wav")})
                ok = r.status_code == 200
                label = r.json()["label"] if ok else None
            except httpx.HTTPError:
                ok, label = False, None
            out.append((time.perf_counter() - t, ok, label == name[0]))


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in text.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024
    except (OSError, StopIteration):
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--data", help="folder of clips named '<digit>_...' (default: FSDD from ../shared, else the sample)"
    )
    ap.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--clips", type=int, default=200)
    args = ap.parse_args()

    items = clips(args.data, args.clips)
    proc, url = start_server(args)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            for name, data in items[:10]:
                c.post("/predict", files={"file": (name, data)}).raise_for_status()
        load = os.getloadavg()[0]
        results: list[list] = [[] for _ in range(args.clients)]
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=client, args=(url, items, k * 7, t0 + args.seconds, results[k]))
            for k in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)

    done = [r for rs in results for r in rs]
    lat = np.array([r[0] for r in done]) * 1000
    ok = [r for r in done if r[1]]
    row = {
        "clients": args.clients,
        "backend": args.backend,
        "threads": args.threads,
        "seconds": round(wall, 2),
        "requests": len(done),
        "requests_per_s": round(len(done) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p90_ms": round(float(np.percentile(lat, 90)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
        "errors": len(done) - len(ok),
        "correct": round(sum(r[2] for r in ok) / max(1, len(ok)), 4),
        "server_rss_mb": round(rss, 1),
        "load_avg_before": round(load, 2),
        "cpus": os.cpu_count(),
    }
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
