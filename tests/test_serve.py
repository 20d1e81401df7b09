"""audiomnist serve: the REST API in-process, the CLI server on loopback, and the page in headless Chromium."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
from fastapi.testclient import TestClient

from audiomnist import cli
from audiomnist.catalog import sample_root
from audiomnist.infer import Classifier
from audiomnist.recognizer import STRING_CLASSES, StringRecognizer
from audiomnist.serve import MAX_BEAM, create_app

from conftest import fake_encoded, free_port

LIMIT = 200_000
CHROMIUM = Path("/usr/bin/chromium")
CANDIDATES = ["7_jackson_0.wav", "3_theo_0.wav", "4_george_0.wav", "2_nicolas_0.wav"]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load()


@pytest.fixture(scope="module")
def client(clf) -> TestClient:
    return TestClient(create_app(clf, max_upload_bytes=LIMIT))


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, int]:
    x, sr = sf.read(sorted(sample_root().glob("*/*.flac"))[0], dtype="float32")
    return x, sr


def encode(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def post(client, name: str, data: bytes, **kw) -> httpx.Response:
    return client.post("/predict", files={"file": (name, data, "application/octet-stream")}, **kw)


def test_health(client, clf):
    h = client.get("/health").json()
    assert h["status"] == "ok"
    assert h["classes"] == clf.classes and h["sample_rate"] == clf.sample_rate and h["max_upload_bytes"] == LIMIT


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for element in ('id="record"', 'id="file"', 'id="digit"', 'id="bars"', 'id="seconds"'):
        assert element in r.text
    assert "http://" not in r.text and "https://" not in r.text


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_predict_formats(client, clf, clip, fmt):
    data = encode(*clip, fmt)
    r = post(client, f"clip.{fmt.lower()}", data)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = clf.predict(*sf.read(io.BytesIO(data), dtype="float32"))
    assert body["digit"] == body["label"] == expected.label
    assert body["probability"] == pytest.approx(expected.probability, abs=1e-5)
    assert list(body["probabilities"]) == clf.classes and sum(body["probabilities"].values()) == pytest.approx(
        1, abs=1e-4
    )
    assert body["filename"] == f"clip.{fmt.lower()}" and body["sample_rate"] == clip[1] and body["latency_ms"] >= 0


def test_stereo_at_another_rate(client, clf, clip):
    x = soxr.resample(clip[0], clip[1], 44100)
    r = post(client, "stereo.wav", encode(np.stack([x, x], axis=1), 44100, "WAV"))
    assert r.status_code == 200 and r.json()["sample_rate"] == 44100
    assert r.json()["label"] == clf.predict(x, 44100).label


def test_oversize_is_413(client):
    r = post(client, "big.wav", b"RIFF" + bytes(LIMIT))
    assert r.status_code == 413 and r.json()["detail"].startswith(
        "big.wav is larger than the upload limit of 200000 bytes"
    )
    r = post(client, "huge.wav", bytes(5 * LIMIT))
    assert r.status_code == 413 and "request body" in r.json()["detail"] and f"{LIMIT} bytes" in r.json()["detail"]


def test_oversize_streamed_is_413(client):
    def body():
        for _ in range(100):
            yield b"-" * 10_000

    r = client.post("/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "upload limit" in r.json()["detail"]


@pytest.mark.parametrize("name, data", [("notes.txt", b"just some text\n" * 20), ("noise.wav", bytes(range(256)) * 8)])
def test_not_audio_is_415_naming_the_file(client, name, data):
    r = post(client, name, data)
    assert r.status_code == 415
    assert r.json()["detail"].startswith(f"{name}: not a readable audio file")


def test_unusable_audio_is_422(client):
    r = post(client, "empty.wav", b"")
    assert r.status_code == 422 and r.json()["detail"] == "empty.wav: empty file (0 bytes)"
    r = post(client, "silent.wav", encode(np.zeros(0, np.float32), 8000, "WAV"))
    assert r.status_code == 422 and "0 frames" in r.json()["detail"]


def test_other_formats_through_ffmpeg(client, fake_ffmpeg):
    r = post(client, "memo.m4a", fake_encoded(np.zeros(8000)))
    assert r.status_code == 200 and r.json()["sample_rate"] == 8000 and r.json()["duration_s"] == 1.0
    assert r.json()["digit"] is None and r.json()["reason"] == "no speech"


def test_other_formats_without_ffmpeg_415(client, no_ffmpeg):
    r = post(client, "memo.m4a", fake_encoded(np.zeros(8000)))
    assert r.status_code == 415 and "once ffmpeg is installed" in r.json()["detail"]


# Uploads that hold no digit, and the reason each answer must give.
DEGENERATE = [
    ("nan.wav", np.full(800, np.nan, np.float32), "FLOAT", "bad samples"),
    ("loud.wav", np.full(8000, 1e30, np.float32), "FLOAT", "bad samples"),
    ("silence.wav", np.zeros(8000, np.float32), "PCM_16", "no speech"),
    ("blip.wav", np.full(96, 0.5, np.float32), "PCM_16", "too short"),
]


@pytest.mark.parametrize("name, x, subtype, reason", DEGENERATE)
def test_degenerate_audio_is_200_with_no_digit_and_the_reason(client, name, x, subtype, reason):
    r = post(client, name, encode(x, 8000, "WAV", subtype))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digit"] is None and body["label"] is None and body["reason"] == reason and body["filename"] == name


def test_page_says_no_digit_heard():
    page = (Path(__file__).resolve().parents[1] / "src" / "audiomnist" / "web" / "index.html").read_text()
    assert "no digit heard" in page and "r.reason" in page


def test_bad_requests(client):
    r = client.post("/predict", files={"audio": ("a.wav", b"x")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = client.post("/predict", data={"file": "not a file"}, files={"other": ("a.wav", b"x")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = client.post("/predict", json={"file": "a.wav"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/predict", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and r.json()["detail"]
    assert client.get("/predict").status_code == 405


def test_cli_rejects_bad_settings(capsys):
    assert cli.main(["serve", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err
    assert cli.main(["serve", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def run_server(*extra: str):
    """`audiomnist serve` in a subprocess on a free loopback port (1 MiB upload limit): yields its URL."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "audiomnist.cli",
        "serve",
        "--port",
        str(port),
        "--max-upload-mb",
        "1",
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"audiomnist serve exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"audiomnist serve did not answer on {url} within 90 s")
        time.sleep(0.2)
    try:
        yield url
    finally:  # also when the generator is closed early
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server() -> str:
    """`audiomnist serve` with the shipped models (the digit classifier and the digit-string model)."""
    yield from run_server()


def test_live_server_concurrent_and_bad_uploads(server, clf, fsdd_dir):
    paths = [fsdd_dir / f"{d}_{s}_0.wav" for d in range(10) for s in ("jackson", "theo")]

    def ask(path: Path) -> tuple[str, int, dict]:
        with open(path, "rb") as f:
            r = httpx.post(f"{server}/predict", files={"file": (path.name, f, "audio/wav")}, timeout=60)
        return path.name, r.status_code, r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, paths))
    for (name, status, body), path in zip(answers, paths):
        assert status == 200 and body["filename"] == name
        assert body["label"] == clf.predict_file(path).label
    r = httpx.post(f"{server}/predict", files={"file": ("huge.wav", bytes(3 * 2**20))}, timeout=60)
    assert r.status_code == 413
    r = httpx.post(f"{server}/predict", files={"file": ("notes.txt", b"hello")}, timeout=60)
    assert r.status_code == 415 and r.json()["detail"].startswith("notes.txt:")
    assert httpx.get(f"{server}/health").status_code == 200


def fake_capture_wav(fsdd_dir: Path, out: Path, server: str) -> tuple[Path, Path]:
    """A spoken-digit clip at 48 kHz, 16-bit, in a 2 s loop period, and its source: the first candidate the server
    gets right.

    Chromium loops the file, so a 3 s recording holds at least one whole utterance, with more than a
    1 s gap of silence to the next: the model's 1 s energy window sees exactly one.
    """
    for name in CANDIDATES:
        x, sr = sf.read(fsdd_dir / name, dtype="float32")
        period = np.zeros(2 * 48000, np.float32)
        y = soxr.resample(x, sr, 48000)[: 48000 // 2]
        period[12000 : 12000 + len(y)] = y
        sf.write(out, period, 48000, subtype="PCM_16")
        with open(out, "rb") as f:
            body = httpx.post(f"{server}/predict", files={"file": (name, f)}, timeout=60).json()
        if body["label"] == name[0] and body["probability"] > 0.8:
            return out, fsdd_dir / name
    pytest.fail(f"the shipped model misclassifies every candidate clip {CANDIDATES}; choose others")


@pytest.fixture(scope="module")
def browser(server, fsdd_dir, tmp_path_factory):
    """Headless Debian Chromium with a fake microphone playing a spoken digit, and the FSDD clip of that digit."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright python package not installed (pip install playwright)"
    )
    wav, source = fake_capture_wav(fsdd_dir, tmp_path_factory.mktemp("fake_mic") / "digit.wav", server)
    args = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield b, source
        b.close()


def open_page(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_selector("#bars .row")
    return page, errors


def wait_done(page) -> None:
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#error")


@pytest.mark.browser
def test_page_records_from_the_microphone(browser, server):
    b, source = browser
    digit = source.name[0]
    page, errors = open_page(b, server)
    page.fill("#seconds", "3")
    page.click("#record")
    wait_done(page)
    assert page.text_content("#digit") == digit
    assert page.locator("#bars .row").count() == 11  # ten digits and the shipped model's "none"
    assert page.text_content("#bars .top span") == digit
    assert "recording.wav" in page.text_content("#meta")
    assert errors == []
    page.close()


@pytest.mark.browser
def test_page_sends_a_chosen_file(browser, server):
    b, source = browser
    page, errors = open_page(b, server)
    page.set_input_files("#file", str(source))
    wait_done(page)
    assert page.text_content("#digit") == source.name[0]
    assert page.text_content("#meta").startswith(source.name)
    assert errors == []
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert page.text_content("#error").startswith("notes.txt: not a readable audio file")
    assert page.text_content("#digit") == ""
    page.close()


# ---- POST /transcribe: a digit-string model (untrained here: the shape of the answers, not their digits) -----------


@pytest.fixture(scope="module")
def rec(string_model) -> StringRecognizer:
    return StringRecognizer.load(string_model[1], threads=1)


@pytest.fixture(scope="module")
def strings_client(clf, rec) -> TestClient:
    return TestClient(create_app(clf, max_upload_bytes=LIMIT, strings=rec, strings_name="untrained"))


def transcribe(client, name: str, data: bytes, query: str = "", **kw) -> httpx.Response:
    return client.post(f"/transcribe{query}", files={"file": (name, data, "application/octet-stream")}, **kw)


def number_clip(fsdd_dir: Path | None = None) -> tuple[np.ndarray, int]:
    """Three sample clips in a row, 0.1 s apart: a 'number' of about 2 s at 8 kHz."""
    from audiomnist.export import sample_windows_flat

    gap = np.zeros(800, np.float32)
    return np.concatenate([x for c in sample_windows_flat(8000, 3) for x in (c, gap)]), 8000


def check_transcript(body: dict, duration_s: float, model: str = "untrained") -> None:
    assert re.fullmatch(r"[0-9]*", body["digits"]), body["digits"]
    assert "".join(w["digit"] for w in body["words"]) == body["digits"]
    assert all(set(w) == {"digit", "confidence", "time"} for w in body["words"])
    assert all(0 <= w["confidence"] <= 1 for w in body["words"])
    times = [w["time"] for w in body["words"]]
    assert times == sorted(times) and all(0 <= t <= duration_s + 0.1 for t in times)
    assert body["model"] == model and body["latency_ms"] >= 0


def test_health_reports_the_string_model(client, strings_client, rec):
    assert client.get("/health").json()["string_model"] is None
    s = strings_client.get("/health").json()["string_model"]
    assert s["model"] == "untrained" and s["backend"] == "onnx" and s["classes"] == STRING_CLASSES
    assert s["sample_rate"] == rec.sample_rate and s["max_seconds"] > 10 and s["rescored_by"] == "default"


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_transcribe_formats(strings_client, rec, fmt):
    data = encode(*number_clip(), fmt)
    r = transcribe(strings_client, f"number.{fmt.lower()}", data)
    assert r.status_code == 200, r.text
    body = r.json()
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    check_transcript(body, len(x) / sr)
    want = rec.transcribe(x, sr)
    assert body["digits"] == want.digits and body["reason"] is None and body["beam"] == 1
    assert body["tempo"] == want.tempo
    assert body["filename"] == f"number.{fmt.lower()}" and body["sample_rate"] == sr
    assert body["duration_s"] == pytest.approx(len(x) / sr, abs=1e-3) and body["backend"] == "onnx"


def test_transcribe_stereo_at_another_rate_and_a_beam(strings_client, rec):
    x, sr = number_clip()
    y = soxr.resample(x, sr, 16000)
    data = encode(np.stack([y, y], axis=1), 16000, "WAV")
    r = transcribe(strings_client, "stereo.wav", data, "?beam=8")
    assert r.status_code == 200, r.text
    check_transcript(r.json(), len(y) / 16000)
    assert r.json()["beam"] == 8 and r.json()["sample_rate"] == 16000
    z, _ = sf.read(io.BytesIO(data), dtype="float32")  # the very samples the server read (16-bit, two channels)
    assert r.json()["digits"] == rec.transcribe(z, 16000, beam=8).digits


@pytest.mark.parametrize("beam", ["0", "-1", "x", "1.5", str(MAX_BEAM + 1)])
def test_transcribe_rejects_a_bad_beam(strings_client, beam):
    r = transcribe(strings_client, "number.wav", encode(*number_clip(), "WAV"), f"?beam={beam}")
    assert r.status_code == 422 and r.json()["detail"].startswith("beam must be a whole number"), r.text


@pytest.mark.parametrize("name, x, subtype, reason", DEGENERATE)
def test_transcribe_degenerate_audio_is_200_with_no_digits_and_the_reason(strings_client, name, x, subtype, reason):
    r = transcribe(strings_client, name, encode(x, 8000, "WAV", subtype))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digits"] == "" and body["words"] == [] and body["reason"] == reason and body["filename"] == name


def test_transcribe_rejects_bad_uploads_like_predict(strings_client):
    r = transcribe(strings_client, "big.wav", b"RIFF" + bytes(LIMIT))
    assert r.status_code == 413 and r.json()["detail"].startswith("big.wav is larger than the upload limit")
    r = transcribe(strings_client, "huge.wav", bytes(5 * LIMIT))
    assert r.status_code == 413 and "request body" in r.json()["detail"]
    r = transcribe(strings_client, "notes.txt", b"just some text\n" * 20)
    assert r.status_code == 415 and r.json()["detail"].startswith("notes.txt: not a readable audio file")
    r = transcribe(strings_client, "empty.wav", b"")
    assert r.status_code == 422 and r.json()["detail"] == "empty.wav: empty file (0 bytes)"
    r = strings_client.post("/transcribe", files={"audio": ("a.wav", b"x")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = strings_client.post("/transcribe", json={"file": "a.wav"})
    assert r.status_code == 415 and "URL/transcribe" in r.json()["detail"]
    r = strings_client.post("/transcribe", content=b"junk", headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400
    assert strings_client.get("/transcribe").status_code == 405


def test_transcribe_without_a_string_model_is_503_and_the_rest_works(client, clip):
    r = transcribe(client, "number.wav", encode(*number_clip(), "WAV"))
    assert r.status_code == 503 and "--string-model" in r.json()["detail"]
    assert post(client, "clip.wav", encode(*clip, "WAV")).status_code == 200


def test_transcribe_from_a_checkpoint_answers_like_its_export(clf, string_model, strings_client):
    torch_app = TestClient(create_app(clf, LIMIT, strings=StringRecognizer.load(string_model[0], threads=1)))
    data = encode(*number_clip(), "WAV")
    a, b = transcribe(torch_app, "n.wav", data).json(), transcribe(strings_client, "n.wav", data).json()
    assert a["backend"] == "torch" and a["model"] == "best" and a["digits"] == b["digits"]
    assert [w["confidence"] for w in a["words"]] == pytest.approx([w["confidence"] for w in b["words"]], abs=1e-3)


def test_page_has_a_number_mode(client):
    text = client.get("/").text
    for element in ('id="mode-digit"', 'id="mode-number"', 'id="digits"', 'id="words"', '"transcribe"'):
        assert element in text
    assert "no digits heard" in text and "r.reason" in text


def test_cli_rescoring_flags(capsys, tmp_path):
    assert cli.main(["serve", "--rescore-model", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "rescoring model:" in err and "--string-model" not in err  # the string model is not the one at fault
    with pytest.raises(SystemExit):  # one or the other
        cli.main(["serve", "--rescore-model", "other", "--no-rescore"])
    assert "not allowed with" in capsys.readouterr().err


def test_cli_rejects_a_string_model_that_is_not_one(capsys, tmp_path):
    assert cli.main(["serve", "--string-model", "default"]) == 2
    assert "--string-model" in (err := capsys.readouterr().err) and "not a digit-string model" in err
    assert cli.main(["serve", "--string-model", str(tmp_path / "nothing")]) == 2
    assert "--string-model" in capsys.readouterr().err
    assert cli.main(["serve", "--steady-pace", "-2"]) == 2
    assert "--steady-pace must be a number of digits a second" in capsys.readouterr().err


@pytest.fixture(scope="module")
def strings_server(string_model) -> str:
    """`audiomnist serve --string-model CHECKPOINT` (the untrained string model's best.pt, so torch)."""
    yield from run_server("--string-model", str(string_model[0]))


def test_live_server_transcribes_with_the_string_model_given(strings_server, string_model, fsdd_dir):
    h = httpx.get(f"{strings_server}/health").json()
    assert h["string_model"]["model"] == str(string_model[0]) and h["string_model"]["backend"] == "torch"
    assert h["string_model"]["rescored_by"] == "default"
    path = fsdd_dir / "4_george_0.wav"
    with open(path, "rb") as f:
        r = httpx.post(f"{strings_server}/transcribe?beam=4", files={"file": (path.name, f)}, timeout=60)
    assert r.status_code == 200, r.text
    check_transcript(r.json(), sf.info(path).duration, model=str(string_model[0]))
    assert r.json()["rescored_by"] == "default"
    assert r.json()["digits"] == StringRecognizer.load(string_model[0]).transcribe_file(path, beam=4).digits
    r = httpx.post(f"{strings_server}/transcribe", files={"file": ("notes.txt", b"hello")}, timeout=60)
    assert r.status_code == 415 and r.json()["detail"].startswith("notes.txt:")


def wait_ready(page) -> None:
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)


@pytest.mark.browser
def test_page_transcribes_a_number(browser, strings_server):
    b, source = browser
    page, errors = open_page(b, strings_server)
    wait_ready(page)
    assert page.is_enabled("#mode-number")
    page.check("#mode-number")
    assert page.text_content("#title") == "Say a number" and page.input_value("#seconds") == "5"
    assert not page.is_visible("#bars") and not page.is_visible("#digit")
    page.set_input_files("#file", str(source))
    wait_done(page)
    with open(source, "rb") as f:
        want = httpx.post(f"{strings_server}/transcribe", files={"file": (source.name, f)}, timeout=60).json()
    assert page.text_content("#digits") == (want["digits"] or "no digits heard")
    assert page.locator("#words .word").count() == len(want["digits"])
    assert page.text_content("#number-meta").startswith(source.name)
    page.fill("#seconds", "3")
    page.click("#record")
    wait_done(page)
    assert re.fullmatch(r"[0-9]+|no digits heard.*", page.text_content("#digits"))
    assert "recording.wav" in page.text_content("#number-meta")
    page.check("#mode-digit")  # back to one digit: the bars and /predict
    assert page.input_value("#seconds") == "1.5" and page.is_visible("#bars") and page.text_content("#digits") == ""
    page.set_input_files("#file", str(source))
    wait_done(page)
    assert page.text_content("#digit") == source.name[0]
    assert errors == []
    page.close()


@pytest.mark.browser
def test_page_without_a_string_model_offers_digits_only(browser):
    servers = run_server("--no-string-model")
    server = next(servers)
    assert httpx.get(f"{server}/health").json()["string_model"] is None
    page, errors = open_page(browser[0], server)
    wait_ready(page)
    assert page.is_disabled("#mode-number") and "--string-model" in page.text_content("#mode-note")
    assert errors == []
    page.close()
    servers.close()
