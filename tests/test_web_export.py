"""`audiomnist export MODEL --web DIR`: the folder's contents, and (browser tests) that the page computes in the
browser the probabilities Python computes for the same file."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomnist import cli
from audiomnist.errors import AudiomnistError
from audiomnist.infer import PRETRAINED, Classifier
from audiomnist.tempo import change_tempo
from audiomnist.web_export import ORT_FILES, ORT_WEB_VERSION, npm_pack, vendor_ort, write_web

from conftest import reject_checkpoint

CHROMIUM = Path("/usr/bin/chromium")


def fake_ort(folder: Path) -> Path:
    """An unpacked package with the files the page loads (contents do not matter to the writer)."""
    for rel in ORT_FILES:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(f"// {rel}\n")
    return folder


def test_web_folder_holds_page_model_and_runtime(tmp_path):
    out = tmp_path / "site"
    index = write_web(PRETRAINED / "default.onnx", out, fake_ort(tmp_path / "pkg"))
    assert index == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "model.onnx", "model.onnx.json", "ort"]
    assert (out / "model.onnx").read_bytes() == (PRETRAINED / "default.onnx").read_bytes()
    assert sorted(p.name for p in (out / "ort").iterdir()) == sorted(Path(r).name for r in ORT_FILES)
    html = index.read_text()
    assert '<script src="ort/ort.wasm.min.js"></script>' in html and "__CONFIG__" not in html
    config = json.loads(html.split("const CFG = ", 1)[1].split(";\n", 1)[0])
    assert config["sample_rate"] == 8000 and config["num_samples"] == 12800  # the shipped model's 1.6 s window
    shipped = json.loads((PRETRAINED / "default.onnx.json").read_text())
    assert config["classes"] == [*"0123456789", "none"] and config["none_threshold"] == shipped["none_threshold"]
    assert (config["input"], config["output"], config["pad_mode"]) == ("waveform", "probabilities", "zeros")
    assert config["gate"]["min_speech_dbfs"] == -60.0


def test_bad_runtime_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudiomnistError, match="not an onnxruntime-web package"):
        vendor_ort(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "x.tgz").write_bytes(b"not a tarball")
    with pytest.raises(AudiomnistError, match="not an onnxruntime-web package tarball"):
        vendor_ort(tmp_path / "x.tgz", tmp_path / "out")


def test_export_needs_a_destination(capsys):
    assert cli.main(["export", "default"]) == 2
    assert "--onnx OUT.onnx, --web DIR" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ort_web(tmp_path_factory) -> Path:
    """onnxruntime-web: $AUDIOMNIST_ORT_WEB (tarball or unpacked package), else fetched with npm pack."""
    if os.environ.get("AUDIOMNIST_ORT_WEB"):
        return Path(os.environ["AUDIOMNIST_ORT_WEB"])
    try:
        return npm_pack(ORT_WEB_VERSION, tmp_path_factory.mktemp("npm"))
    except AudiomnistError as e:
        pytest.skip(f"onnxruntime-web not available ({e}); set AUDIOMNIST_ORT_WEB to a tarball from npm pack")


@pytest.fixture(scope="module")
def site(ort_web, tmp_path_factory):
    """The exported page for the shipped model, served over HTTP on loopback."""
    out = tmp_path_factory.mktemp("site")
    assert cli.main(["export", "default", "--web", str(out), "--ort-web", str(ort_web)]) == 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.func.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", out
    server.shutdown()


@pytest.fixture(scope="module")
def chromium():
    """Headless Debian Chromium (one per module: Playwright's sync API runs one instance at a time)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright python package not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def open_site(browser, url: str):
    """A page of the browser at url once the model has loaded, and the list its console errors go to."""
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_function("['idle', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert pg.evaluate("document.body.dataset.state") == "idle", pg.text_content("#error")
    return pg, errors


@pytest.fixture(scope="module")
def page(site, chromium):
    pg, errors = open_site(chromium, site[0])
    yield pg, errors
    pg.close()


def in_browser(pg, path: Path) -> dict:
    pg.set_input_files("#file", str(path))
    pg.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert pg.evaluate("document.body.dataset.state") == "done", pg.text_content("#error")
    return pg.evaluate("window.lastResult")


@pytest.mark.browser
def test_page_computes_pythons_probabilities_in_the_browser(page, site, fsdd_dir):
    """At the model's rate the browser gets the very samples Python does, so the probabilities agree to 1e-4."""
    pg, errors = page
    clf = Classifier.load(site[1] / "model.onnx")
    for path in sorted(fsdd_dir.glob("*_0.wav"))[::7][:6]:
        got, want = in_browser(pg, path), clf.predict_file(path)
        assert got["label"] == want.label, path.name
        assert max(abs(got["probabilities"][c] - want.probabilities[c]) for c in clf.classes) <= 1e-4, path.name
        assert pg.text_content("#digit") == want.label
    assert errors == []


@pytest.mark.browser
def test_page_resamples_and_refuses_silence(page, tmp_path):
    """Another rate goes through the browser's resampler (not soxr): the same digit. Silence: no digit."""
    pg, errors = page
    flac = PRETRAINED.parent / "sample" / "01" / "4_01_0.flac"  # 16 kHz
    assert in_browser(pg, flac)["label"] == Classifier.load(PRETRAINED / "default.onnx").predict_file(flac).label
    sf.write(tmp_path / "silence.wav", np.zeros(8000, np.float32), 8000)
    got = in_browser(pg, tmp_path / "silence.wav")
    assert got["label"] is None and got["reason"] == "no speech"
    assert pg.text_content("#digit") == "no digit heard"
    assert errors == []


@pytest.mark.browser
def test_page_counts_voiced_frames_as_python_does(page):
    """The page's pitch gate (plain loops) against audio.voiced_frames (FFTs), at the model's rate of 8 kHz."""
    from audiomnist.audio import MIN_VOICED_FRAMES, voiced_frames

    pg, _ = page
    rng = np.random.default_rng(3)
    t = np.arange(4000) / 8000
    clips = [rng.normal(0, 0.2, 4000), 0.3 * np.sin(2 * np.pi * 140 * t) + rng.normal(0, 0.01, 4000)]
    clips += [rng.normal(0, 0.05, 4000) + 0.05 * np.sin(2 * np.pi * f * t) for f in (90, 200, 420)]
    for x in clips:
        for enough in (MIN_VOICED_FRAMES, 10**6):
            pg.evaluate(f"CFG.gate.min_voiced_frames = {enough}")
            got = pg.evaluate("x => voicedFrames(new Float64Array(x), 8000)", x.tolist())
            assert got == voiced_frames(x, 8000, enough), enough
    pg.evaluate(f"CFG.gate.min_voiced_frames = {MIN_VOICED_FRAMES}")
    assert pg.evaluate("x => audioProblem(new Float64Array(x), 8000)", clips[0].tolist()) == "no speech"
    assert pg.evaluate("x => audioProblem(new Float64Array(x), 8000)", clips[1].tolist()) is None


@pytest.mark.browser
def test_page_places_windows_as_python_does(page):
    """The page's word finding, centring, crop and both paddings give Classifier.windows's samples exactly
    (audio.centre_on_speech + audio.fit_windows): ramps, and a word with quiet stretches around it."""
    from audiomnist.audio import AudioConfig, centre_on_speech, eval_noise, fit_windows

    pg, _ = page
    np.testing.assert_array_equal(np.array(pg.evaluate("Array.from(evalNoise(8000))"), np.float32), eval_noise(8000))
    rng = np.random.default_rng(5)
    window_ms = pg.evaluate("CFG.num_samples") * 1000 // 8000
    clips = [(rng.uniform(-0.3, 0.3, n) * np.linspace(0.01, 1, n) ** 3).astype(np.float32)
             for n in (1, 60, 3001, 8000, 8001, 12345, 12800, 12801, 20000)]  # fmt: skip
    for before, after in ((0, 9000), (700, 700), (15000, 333), (4000, 30000)):
        x = rng.normal(0, 1e-3, before + 3000 + after).astype(np.float32)
        x[before : before + 3000] += rng.uniform(-0.4, 0.4, 3000).astype(np.float32)
        clips.append(x)
    for x in clips:
        for pad_mode in ("zeros", "noise"):
            got = pg.evaluate(
                "([x, mode]) => { const keep = CFG.pad_mode; CFG.pad_mode = mode; try { "
                "return Array.from(placeWindow(Float32Array.from(x))); } finally { CFG.pad_mode = keep; } }",
                [x.tolist(), pad_mode],
            )
            cfg = AudioConfig(sample_rate=8000, duration_ms=window_ms, pad_mode=pad_mode)
            part, centre = centre_on_speech(x, cfg.num_samples, 8000)
            np.testing.assert_array_equal(np.array(got, np.float32), fit_windows([part], cfg, [centre])[0])


# ---- a digit-string model's page: the number, decoded in the browser ------------------------------------------------


def config_of(html: str) -> dict:
    return json.loads(html.split("const CFG = ", 1)[1].split(";\n", 1)[0])


def test_string_model_page_is_the_number_mode(string_model, tmp_path):
    from audiomnist.ctc import STRING_CLASSES
    from audiomnist.recognizer import StringRecognizer

    html = write_web(string_model[1], tmp_path / "site", fake_ort(tmp_path / "pkg")).read_text()
    config = config_of(html)
    rec = StringRecognizer.load(string_model[1])
    assert config["task"] == "strings" and config["classes"] == STRING_CLASSES
    assert config["frame_s"] == rec.frame_seconds == 0.04 and config["max_record_s"] == 30
    assert config["word_end_s"] == rec.model.timing.word_end_s == 0.04  # a log-mel model's digit: its peak frame's end
    assert (
        'data-mode="number"' in html and "Say a number" in html and '<div class="modes" style="display: none"' in html
    )
    digits = write_web(PRETRAINED / "default.onnx", tmp_path / "digits", fake_ort(tmp_path / "pkg")).read_text()
    assert config_of(digits)["task"] == "digits" and 'data-mode="digit"' in digits
    assert '<div class="modes" style="display: none"' in digits  # one model, one mode: no switch to a number


def test_export_web_takes_a_string_model(string_model, tmp_path, capsys):
    out = tmp_path / "site"
    assert (
        cli.main(["export", str(string_model[0]), "--web", str(out), "--ort-web", str(fake_ort(tmp_path / "p"))]) == 0
    )
    files = ["index.html", "model.onnx", "model.onnx.json", "ort", "rescorer.onnx", "rescorer.onnx.json"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert json.loads((out / "model.onnx.json").read_text())["task"] == "strings"
    assert "digit strings" in (said := capsys.readouterr().out) and "heard again by the shipped" in said
    assert config_of((out / "index.html").read_text())["rescorer"]["classes"][:10] == list("0123456789")
    # the same folder made into a digit page: no rescorer left behind
    assert cli.main(["export", "default", "--web", str(out), "--ort-web", str(fake_ort(tmp_path / "p"))]) == 0
    assert not (out / "rescorer.onnx").exists() and "rescorer" not in config_of((out / "index.html").read_text())


@pytest.fixture(scope="module", params=["untrained", "strings-emb"])
def string_page(request, ort_web, string_model, chromium, tmp_path_factory):
    """The exported page of the untrained (log-mel) string model, or of the shipped encoder one, in headless
    Chromium: each model's own output step and digit timing reach the page."""
    out = tmp_path_factory.mktemp("string_site")
    write_web(string_model[1] if request.param == "untrained" else PRETRAINED / "strings-emb.onnx", out, ort_web)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.func.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pg, errors = open_site(chromium, f"http://127.0.0.1:{server.server_address[1]}/")
    yield pg, errors, out
    pg.close()
    server.shutdown()


@pytest.mark.browser
def test_string_page_decodes_pythons_digits_in_the_browser(string_page, fsdd_dir, tmp_path):
    """At the model's rate the browser runs the very samples Python does: the same digits, confidences and times,
    each digit heard again by the page's rescorer as StringRecognizer does."""
    from audiomnist.recognizer import StringRecognizer

    pg, errors, out = string_page
    rec = StringRecognizer.load(out / "model.onnx", rescore=out / "rescorer.onnx")
    assert rec.rescorer is not None and rec.rescorer.backend == "onnx"
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(fsdd_dir.glob("*_jackson_0.wav"))[:6]]
    sf.write(tmp_path / "number.wav", np.concatenate(clips[:4]), 8000, subtype="FLOAT")
    # said 2.5 x as fast: the shipped model hears it again slowed (ctc.STEADY_PACE), the page too
    sf.write(tmp_path / "quick.wav", change_tempo(np.concatenate(clips), 8000, 2.5), 8000, subtype="FLOAT")
    if rec.frame_seconds == 0.08:  # the shipped encoder model (the untrained one's digits come at random)
        assert rec.transcribe_file(tmp_path / "quick.wav").tempo < 1
    for path in [tmp_path / "number.wav", tmp_path / "quick.wav", *sorted(fsdd_dir.glob("*_theo_0.wav"))[:2]]:
        got, want = in_browser(pg, path), rec.transcribe_file(path)
        assert got["digits"] == want.digits and got["reason"] is None and got["tempo"] == want.tempo, path.name
        assert [w["time"] for w in got["words"]] == [w.time for w in want.words]
        assert [w["confidence"] for w in got["words"]] == pytest.approx([w.confidence for w in want.words], abs=2e-4)
        assert pg.text_content("#digits") == (want.digits or "no digits heard")
        assert pg.locator("#words .word").count() == len(want.digits)
    sf.write(tmp_path / "silence.wav", np.zeros(8000, np.float32), 8000)
    got = in_browser(pg, tmp_path / "silence.wav")
    assert got["digits"] == "" and got["reason"] == "no speech"
    assert pg.text_content("#digits") == "no digits heard (no speech)"


@pytest.mark.browser
@pytest.mark.parametrize("stored", [{}, {"none_threshold": 0.3}, {"none_threshold": 1.0}])
def test_page_of_a_none_class_model_says_no_digit_heard(chromium, ort_web, tmp_path, fsdd_dir, stored):
    """A model trained with --negative: where its 'none' class wins (or p(none) reaches the model's stored threshold)
    the page says "no digit heard" (not a digit), with the calibrated probabilities Python gives; under the
    threshold it says the best digit, as Python does."""
    ckpt = reject_checkpoint(tmp_path / "none.pt", none_bias=3.0 if stored else 40.0, temperature=1.5, **stored)
    assert cli.main(["export", str(ckpt), "--web", str(tmp_path / "site"), "--ort-web", str(ort_web)]) == 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.func.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pg, errors = open_site(chromium, f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        path = sorted(fsdd_dir.glob("3_*_0.wav"))[0]
        got, want = in_browser(pg, path), Classifier.load(tmp_path / "site" / "model.onnx").predict_file(path)
        assert max(abs(got["probabilities"][c] - want.probabilities[c]) for c in want.probabilities) <= 1e-4
        assert (got["label"], got["reason"]) == (want.label, want.reason)
        if stored.get("none_threshold") == 1.0:  # p(none) never reaches 1: the best digit
            assert want.label is not None and pg.text_content("#digit") == want.label
            assert max(want.probabilities, key=want.probabilities.get) == "none"  # the likelier class, not the answer
            assert pg.text_content("#bars .top span") == want.label  # the answer is what the bars highlight
        else:
            assert want.reason == "not a digit" and pg.text_content("#digit") == "no digit heard"
    finally:
        pg.close()
        server.shutdown()
    assert errors == []


@pytest.mark.browser
def test_page_merges_close_peaks_as_python_does(string_page):
    """greedyCtc's merge of peaks under CFG.min_gap frames apart equals ctc.decode's on wavering outputs, and the page
    merges as the model's own timing says (2 frames for the 80 ms encoder model, 3 for 40 ms log-mel)."""
    from audiomnist.ctc import decode

    pg, errors, out = string_page
    assert pg.evaluate("CFG.min_gap") == {0.04: 3, 0.08: 2}[pg.evaluate("CFG.frame_s")]
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.choice(11, size=40, p=[0.6] + [0.04] * 10)
        p = np.full((40, 11), 0.01, np.float32)
        p[np.arange(40), labels] = rng.uniform(0.4, 0.9, 40)
        p /= p.sum(axis=1, keepdims=True)
        got = pg.evaluate("([p, n]) => greedyCtc(new Float32Array(p), n, 11)", [p.ravel().tolist(), 40])
        want = decode(p, min_gap=pg.evaluate("CFG.min_gap"))
        assert [w["digit"] for w in got] == [h.digit for h in want]
        assert [w["confidence"] for w in got] == pytest.approx([round(h.confidence, 4) for h in want], abs=2e-4)
    assert errors == []
