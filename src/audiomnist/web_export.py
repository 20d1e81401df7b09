"""A static web page that runs an exported model in the browser: `audiomnist export MODEL --web DIR`.

DIR gets index.html, model.onnx (+ its sidecar) and ort/, the WebAssembly build of ONNX Runtime (npm package
onnxruntime-web, fetched at build time with `npm pack`, or taken from --ort-web PATH: a tarball from `npm pack` or
an unpacked package). Serve DIR with any static file server (`python -m http.server -d DIR`; browsers do not run
WebAssembly from file:// pages); the page decodes a file or the microphone, resamples to the model's rate, applies
the no-digit gate, centres the window on the word as audiomnist.infer does, and shows the digit. For a digit-string
model (sidecar "task": "strings") it runs the whole utterance and decodes the CTC output greedily, as
recognizer.StringRecognizer does, and shows the number. No server code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from .audio import (
    FRAME_S,
    MAX_ABS_SAMPLE,
    MAX_APERIODICITY,
    MIN_ACTIVE_S,
    MIN_SIGNAL_S,
    MIN_SPEECH_DBFS,
    MIN_VOICED_FRAMES,
    PITCH_FRAME_S,
    PITCH_HZ,
    SPEECH_BELOW_PEAK,
    SPEECH_OVER_FLOOR,
)
from .ctc import (
    FIRST_WORD_S,
    LEAD_PAD_S,
    PAD_S,
    SLOWEST_TEMPO,
    STEADY_PACE,
    STRING_CLASSES,
    TAIL_PAD_S,
    timing,
)
from .errors import AudiomnistError
from .onnx_model import INPUT, NONE_CLASS, OUTPUT, PRETRAINED, ModelInfo, read_sidecar, sidecar_path
from .paths import atomic_write_text
from .tempo import FRAME_S as TEMPO_FRAME_S
from .tempo import SEARCH_S as TEMPO_SEARCH_S

ORT_WEB_VERSION = "1.31.1"  # the version the page was tested with; --ort-web-version picks another
# package.json names the version and the licence (MIT); the package ships no separate licence file.
ORT_FILES = (
    "dist/ort.wasm.min.js",
    "dist/ort-wasm-simd-threaded.mjs",
    "dist/ort-wasm-simd-threaded.wasm",
    "package.json",
)
RESCORER = PRETRAINED / "default.onnx"  # a number page's single-digit model (recognizer.RESCORER's export)
RESCORER_FILE = "rescorer.onnx"


def npm_pack(version: str, folder: Path) -> Path:
    """The onnxruntime-web tarball of `version`, downloaded by npm into `folder`."""
    npm = shutil.which("npm")
    if npm is None:
        raise AudiomnistError(
            "--web needs npm to fetch onnxruntime-web (or --ort-web PATH: a tarball from "
            f"`npm pack onnxruntime-web@{version}` or an unpacked package)"
        )
    try:
        done = subprocess.run(
            [npm, "pack", f"onnxruntime-web@{version}", "--pack-destination", str(folder)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=folder,
        )
    except subprocess.TimeoutExpired:
        raise AudiomnistError("npm pack onnxruntime-web took over 10 minutes; use --ort-web PATH") from None
    tarballs = sorted(folder.glob("onnxruntime-web-*.tgz"))
    if done.returncode != 0 or not tarballs:
        reason = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise AudiomnistError(f"npm pack onnxruntime-web@{version} failed ({reason}); use --ort-web PATH")
    return tarballs[0]


def vendor_ort(source: Path, dest: Path) -> None:
    """Copy the files the page loads from an onnxruntime-web tarball or unpacked package into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        for rel in ORT_FILES:
            if not (source / rel).is_file():
                raise AudiomnistError(f"{source}: not an onnxruntime-web package (no {rel})")
            shutil.copyfile(source / rel, dest / Path(rel).name)
        return
    try:
        with tarfile.open(source) as tar:
            for rel in ORT_FILES:
                member = tar.extractfile(f"package/{rel}")
                if member is None:
                    raise KeyError(rel)
                with member, open(dest / Path(rel).name, "wb") as f:
                    shutil.copyfileobj(member, f)
    except (tarfile.TarError, KeyError, OSError) as e:
        raise AudiomnistError(f"{source}: not an onnxruntime-web package tarball ({e})") from None


def _string_head(head: str) -> str:
    """The serve page's markup in its number mode: the number view only, for recording up to 30 s."""
    for a, b in (
        ('data-mode="digit"', 'data-mode="number"'),
        ('<h1 id="title">Say a digit</h1>', '<h1 id="title">Say a number</h1>'),
        ("<title>audiomnist: say a digit or a number</title>", "<title>audiomnist: say a number</title>"),
        (
            "Record one spoken digit (0 to 9) from the microphone,",
            "Record a number said at natural pace from the microphone,",
        ),
        ('max="10" step="0.1" value="1.5"', 'max="30" step="0.1" value="5"'),
    ):
        if a not in head:
            raise AudiomnistError(f"web/index.html: no {a!r} to make the number page from")
        head = head.replace(a, b)
    return head


def _rescorer_config(rescorer: Path, sample_rate: int, peak_to_end_s: float) -> dict:
    """What the page needs to hear each digit of a number again with a single-digit model (recognizer.rescore)."""
    side = read_sidecar(rescorer)
    audio = ModelInfo.from_config(side["config"]).audio
    if side.get("task") == "strings" or audio.sample_rate != sample_rate:
        raise AudiomnistError(f"{rescorer}: the page's rescorer must be a single-digit model at {sample_rate} Hz")
    return {"num_samples": audio.num_samples, "pad_mode": audio.pad_mode, "sample_rate": audio.sample_rate,
            "classes": side["classes"], "peak_to_end_s": peak_to_end_s, "pad_s": PAD_S,
            "first_word_s": FIRST_WORD_S}  # fmt: skip


def page(onnx_path: Path, rescorer: Path | None = None) -> str:
    """index.html for the model: the serve page's look (one mode: a digit, or a number for a string model), the
    in-browser pipeline of web/offline.js, the model's settings (rate, window, classes, padding, the no-digit gate)
    inlined; a number page with a `rescorer` (its .onnx beside the page as RESCORER_FILE) hears each digit again."""
    side = read_sidecar(onnx_path)
    info = ModelInfo.from_config(side["config"])
    strings = side.get("task") == "strings"
    config = {
        "task": "strings" if strings else "digits",
        "sample_rate": info.audio.sample_rate,
        "num_samples": info.audio.num_samples,
        "pad_mode": info.audio.pad_mode,
        "classes": side["classes"],
        "input": INPUT,
        "output": OUTPUT,
        "model": info.model,
        "none_class": NONE_CLASS,  # a model trained with --negative: its "none" class wins -> no digit heard
        "none_threshold": side.get("none_threshold"),  # the model's own: none only once p(none) reaches it
        "gate": {
            "frame_s": FRAME_S,
            "min_signal_s": MIN_SIGNAL_S,
            "min_active_s": MIN_ACTIVE_S,
            "min_speech_dbfs": MIN_SPEECH_DBFS,
            "max_abs_sample": MAX_ABS_SAMPLE,
            "pitch_hz": PITCH_HZ,
            "pitch_frame_s": PITCH_FRAME_S,
            "max_aperiodicity": MAX_APERIODICITY,
            "min_voiced_frames": MIN_VOICED_FRAMES,
            "speech_below_peak": SPEECH_BELOW_PEAK,
            "speech_over_floor": SPEECH_OVER_FLOOR,
        },
        "record_s": 5.0 if strings else 1.5,
        "max_record_s": 30.0 if strings else 10.0,
    }
    if strings:
        t = timing(side["config"])
        config |= {"classes": STRING_CLASSES, "frame_s": t.frame_s, "word_end_s": t.word_end_s,
                   "min_gap": t.min_gap, "rescorer": None, "lead_pad_s": LEAD_PAD_S,
                   "tail_pad_s": TAIL_PAD_S,
                   "tempo": {"steady_pace": STEADY_PACE, "slowest": SLOWEST_TEMPO, "frame_s": TEMPO_FRAME_S,
                             "search_s": TEMPO_SEARCH_S}}  # fmt: skip
        if rescorer is not None:
            config["rescorer"] = _rescorer_config(rescorer, info.audio.sample_rate, t.cut_s)
    web = resources.files("audiomnist").joinpath("web")
    head = web.joinpath("index.html").read_text(encoding="utf-8").split("<script>", 1)[0]
    head = head.replace('<div class="modes"', '<div class="modes" style="display: none"')  # one model, one mode
    head = _string_head(head) if strings else head
    head = head.replace(
        "or send an audio file (WAV, FLAC, OGG).",
        "or choose an audio file: the model runs in this browser, nothing is uploaded.",
    )
    script = web.joinpath("offline.js").read_text(encoding="utf-8").replace("__CONFIG__", json.dumps(config))
    return f'{head}<script src="ort/ort.wasm.min.js"></script>\n<script>\n{script}</script>\n</body>\n</html>\n'


def write_web(
    onnx_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    ort_source: str | os.PathLike | None = None,
    version: str = ORT_WEB_VERSION,
    rescorer: str | os.PathLike | None = RESCORER,
) -> Path:
    """DIR/index.html, DIR/model.onnx (+ sidecar, copied unless already there) and DIR/ort/ for an exported model;
    for a digit-string model also DIR/rescorer.onnx (+ sidecar), the single-digit `rescorer` (None: none)."""
    onnx_path, out = Path(onnx_path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, ears = out / "model.onnx", out / RESCORER_FILE
    rescorer = rescorer if read_sidecar(onnx_path).get("task") == "strings" else None  # only a number is rescored
    for src, dst in [(onnx_path, model), *([(Path(rescorer), ears)] if rescorer else [])]:
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
            shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    if rescorer is None:  # a page made again into the same folder must not keep an old one
        ears.unlink(missing_ok=True)
        sidecar_path(ears).unlink(missing_ok=True)
    if ort_source is not None:
        vendor_ort(Path(ort_source), out / "ort")
    else:
        with tempfile.TemporaryDirectory(prefix="audiomnist-ort-") as tmp:
            vendor_ort(npm_pack(version, Path(tmp)), out / "ort")
    atomic_write_text(out / "index.html", page(model, ears if rescorer else None))
    return out / "index.html"
