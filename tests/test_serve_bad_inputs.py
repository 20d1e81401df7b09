"""Reliability of `serve`: bad uploads rejected by name, and 2,000 mixed requests from 16 clients against a live
server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomnist.infer import Classifier

from conftest import BROKEN, ODD, ONE_THREAD_ENV, SPEAKERS, SR, free_port, needs_proc

# In-process torch on one thread, like the ONE_THREAD_ENV subprocesses whose numbers these tests compare with.
pytestmark = pytest.mark.usefixtures("one_thread")


def multipart(filename: bytes, data: bytes, field: bytes = b"file") -> tuple[bytes, dict]:
    """A multipart body built by hand, so a file name can be any bytes (as browsers and curl send them)."""
    b = b"reliability-boundary"
    body = (
        b"--"
        + b
        + b'\r\nContent-Disposition: form-data; name="'
        + field
        + b'"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + b"\r\n--"
        + b
        + b"--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=" + b.decode()}


def test_api_rejects_each_bad_file_by_name_and_answers_the_rest(corpus, trained, tmp_path):
    from fastapi.testclient import TestClient

    from audiomnist.serve import create_app

    clf = Classifier.load(trained[0])
    client = TestClient(create_app(clf, max_upload_bytes=16 * 2**20))
    for path in sorted(p for p in (corpus / "01").iterdir() if p.is_file()):
        body, headers = multipart(os.fsencode(path.name), path.read_bytes())
        r = client.post("/predict", content=body, headers=headers)
        if BROKEN.get(path.name) == "nan":  # decodes, but no digit can be in it: an answer, not an error
            assert r.status_code == 200 and r.json()["digit"] is None and r.json()["reason"] == "bad samples", r.text
        elif path.name in BROKEN:
            assert r.status_code in (415, 422), (path.name, r.status_code, r.text)
            assert path.name in r.json()["detail"] and BROKEN[path.name] in r.json()["detail"].lower(), r.text
        else:
            assert r.status_code == 200, (path.name, r.text)
            (tmp_path / "clip.wav").write_bytes(path.read_bytes())  # the offline answer, whatever the file's name
            expected = clf.predict_file(tmp_path / "clip.wav")
            assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4), path.name


LIMIT_BYTES = 256 * 1024
REQUESTS, CLIENTS = 2000, 16


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
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audiomnist.cli",
                "serve",
                "--model",
                str(trained[0]),
                "--port",
                str(port),
                "--max-upload-mb",
                str(LIMIT_BYTES / 2**20),
                "--log-level",
                "warning",
            ],
            env=ONE_THREAD_ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )

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
    kinds = [
        {
            "kind": "good",
            "name": p.name,
            "data": p.read_bytes(),
            "expect": 200,
            "probabilities": clf.predict_file(p).probabilities,
        }
        for p in good
    ]
    for name in BROKEN:
        kind, expect = (
            ("no digit", 200) if BROKEN[name] == "nan" else ("bad file", 422 if BROKEN[name] == "empty" else 415)
        )
        kinds.append({"kind": kind, "name": name, "data": (corpus / "01" / name).read_bytes(), "expect": expect})
    big = io.BytesIO()
    sf.write(big, np.random.default_rng(0).normal(0, 0.1, LIMIT_BYTES // 2 + 1000), SR, format="WAV", subtype="PCM_16")
    kinds += [
        {"kind": "oversized", "name": "big.wav", "data": big.getvalue(), "expect": 413},
        {"kind": "oversized chunked", "name": "big.wav", "data": big.getvalue(), "expect": 413, "chunked": True},
        {"kind": "huge chunked", "name": "huge.wav", "data": bytes(8 * 2**20), "expect": 413, "chunked": True},
        {"kind": "no file field", "raw": multipart(b"x.wav", b"abc", field=b"other"), "expect": 422},
        {"kind": "not multipart", "raw": (b"RIFF....", {"content-type": "audio/wav"}), "expect": 415},
        {
            "kind": "broken multipart",
            "raw": (b"garbage", {"content-type": "multipart/form-data; boundary=xyz"}),
            "expect": 400,
        },
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


@pytest.mark.slow
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
            if (
                body["probabilities"] != pytest.approx(item["probabilities"], abs=1e-4)
                or body["filename"] != item["name"]
            ):
                failures.append((item["kind"], item["name"], body))
        elif item["kind"] == "no digit" and r.json()["digit"] is not None:
            failures.append((item["kind"], item["name"], r.json()))
        elif "name" in item and item["kind"] == "bad file" and item["name"] not in r.json()["detail"]:
            failures.append((item["kind"], item["name"], r.json()))
    statuses = [getattr(r, "status_code", 0) for r in results]
    print(
        f"{len(items)} requests, {CLIENTS} clients: statuses {dict(sorted(Counter(statuses).items()))}; "
        f"server RSS {rss[0]:.0f} MB after warm-up, peak {max(rss):.0f} MB, end {rss[-1]:.0f} MB"
    )
    assert not [s for s in statuses if s >= 500], "server errors"
    assert not failures, failures[:10]
    assert sum(k["kind"] == "good" for k in items) > REQUESTS / 2 and sum(k["expect"] == 413 for k in items) > 50
    assert proc.poll() is None, "the server died"
    assert "Traceback" not in log.read_text(errors="replace")
    assert max(rss) - rss[0] < 150, f"server memory grew from {rss[0]:.0f} MB to a peak of {max(rss):.0f} MB"
