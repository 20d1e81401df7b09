"""Web page and REST API for predictions (FastAPI + uvicorn).

    audiomnist serve [--model RUN_DIR|CHECKPOINT|MODEL.onnx|NAME] [--string-model RUN_DIR|CHECKPOINT|MODEL.onnx|NAME]
                     [--no-string-model] [--rescore-model SPEC | --no-rescore] [--backend torch|onnx]
                     [--steady-pace 3.5] [--host 127.0.0.1] [--port 8000]
                     [--max-upload-mb 10] [--threads 1] [--min-prob P] [--none-threshold P]

    GET  /            a page that records from the microphone (or sends a chosen file): one digit with its class
                      probabilities, or a whole number (the digit string) when a string model is loaded
    GET  /health      {"status": "ok", "model", "backend", "classes", "sample_rate", "max_upload_bytes",
                       "string_model": {"model", "backend", "classes", "sample_rate", "max_seconds", "rescored_by"}
                       or null}
    POST /predict     multipart/form-data, audio (WAV, FLAC, OGG, ...) in field "file":
                      {"digit", "label", "probability", "probabilities", "latency_ms", "model", "filename", ...};
                      "digit": null with a "reason" (too short, no speech, bad samples, not a digit, low confidence)
    POST /transcribe  the same upload, a number said at natural pace (a digit-string model, CTC), ?beam=N optional:
                      {"digits": "4155551234", "words": [{"digit", "confidence", "time"}, ...], "reason",
                      "rescored_by": the single-digit model that heard each digit again (null: none), "tempo": 1,
                      or under 1 where a quick number was heard slowed down (ctc.STEADY_PACE), ...};
                      "digits": "" with a "reason" for unusable audio; 503 when no string model is loaded

    curl -F file=@7_jackson_0.wav http://127.0.0.1:8000/predict
    curl -F file=@number.wav http://127.0.0.1:8000/transcribe

Errors are JSON {"detail": "..."}: 413 upload too large, 415 not audio, 422 unusable audio, no file or a bad beam,
400 broken form, 503 /transcribe without a string model.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources

import numpy as np
import soundfile as sf
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from .decode import FfmpegError, ffmpeg_decode, ffmpeg_installed, libsndfile_reason
from .errors import AudiomnistError
from .infer import BACKENDS, Classifier, add_no_digit_arguments, no_digit_options
from .onnx_model import resolve_model
from .recognizer import SHIPPED as SHIPPED_STRINGS
from .recognizer import (
    STRING_CLASSES,
    RescorerError,
    StringRecognizer,
    Transcript,
    add_pace_argument,
    add_rescore_arguments,
    pace_of,
    rescore_spec,
)

FORM_OVERHEAD = 16 * 1024  # multipart boundaries and part headers around the file
MAX_DECODED_SAMPLES = 4 * 2**20  # frames x channels decoded per upload (16 MB float32), whatever the rate
MAX_BEAM = 64  # widest CTC beam /transcribe accepts (?beam=N)
NO_STRINGS = (
    "no digit-string model is loaded, so there is no /transcribe here: start serve with --string-model "
    f"RUN_DIR|MODEL.onnx|NAME (the shipped {SHIPPED_STRINGS!r} model is used by default when it is installed)"
)


class _TooLarge(Exception):
    pass


def _capped(receive, limit: int):
    """An ASGI receive that stops the upload as soon as more than `limit` body bytes have arrived."""
    seen = 0

    async def receive_capped():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge
        return message

    return receive_capped


def decode(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Uploaded bytes -> ((frames, channels) float32, sample rate): at most max_seconds and MAX_DECODED_SAMPLES.

    Raises HTTPException 415 for bytes soundfile cannot read, 422 for a readable file without samples.
    """
    if not data:
        raise HTTPException(422, "empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            frames = min(f.frames, math.ceil(max_seconds * f.samplerate), MAX_DECODED_SAMPLES // f.channels)
            x, sr = f.read(frames, dtype="float32", always_2d=True), f.samplerate
    except Exception as e:  # libsndfile reports unreadable input through several exception types
        reason = libsndfile_reason(e)
        try:  # what a phone or a browser records (m4a, AMR, WebM), where ffmpeg is installed
            x, sr = ffmpeg_decode(data, max_seconds)
        except FfmpegError as fe:
            said = f"; {fe}" if ffmpeg_installed() else "; the server reads other formats once ffmpeg is installed"
            raise HTTPException(415, f"not a readable audio file ({reason}{said}); send WAV, FLAC, OGG or MP3") \
                from None  # fmt: skip
        x = x[: MAX_DECODED_SAMPLES // x.shape[1]]
    if len(x) == 0:
        raise HTTPException(422, "no audio samples (0 frames)")
    return x, sr


def _result(classifier: Classifier, name: str, pred) -> dict:
    """The JSON answer of /predict (the upload's filename, sample_rate and duration_s are added). No digit (degenerate
    audio: too short, no speech, bad samples; or the model's own not a digit, low confidence) is an answer, not an
    error: 200 with digit null and the reason."""
    return {
        "digit": pred.label if classifier.cfg.target == "digit" else None,
        "label": pred.label,
        "probability": pred.probability,
        "probabilities": pred.probabilities,
        "reason": pred.reason,
        "model": name,
        "backend": classifier.backend,
    }


def _transcript_result(rec: StringRecognizer, name: str, t: Transcript, beam: int) -> dict:
    """The JSON answer of /transcribe (the upload's filename, sample_rate and duration_s are added): the digit string,
    each digit with its confidence and time (s); digits "" and the reason where no digit can be in the audio (too
    short, no speech, bad samples)."""
    return {
        "digits": t.digits,
        "words": [asdict(w) for w in t.words],
        "reason": t.reason,
        "model": name,
        "backend": rec.backend,
        "beam": beam,
        "rescored_by": rec.rescorer_name,
        "tempo": t.tempo,
    }


def _beam(request: Request) -> int:
    raw = request.query_params.get("beam", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BEAM:
        raise HTTPException(422, f"beam must be a whole number from 1 (greedy) to {MAX_BEAM}, got {raw!r}")
    return int(raw)


def _string_health(rec: StringRecognizer | None, name: str) -> dict | None:
    if rec is None:
        return None
    audio = rec.model.info.audio
    return {
        "model": name,
        "backend": rec.backend,
        "classes": STRING_CLASSES,
        "sample_rate": rec.sample_rate,
        "max_seconds": audio.max_seconds,
        "rescored_by": rec.rescorer_name,
    }


def _too_large(what: str, max_upload_bytes: int) -> HTTPException:
    return HTTPException(413, f"{what} is larger than the upload limit of {max_upload_bytes} bytes (--max-upload-mb)")


async def _form_upload(request: Request, route: str, max_upload_bytes: int, answer: Callable) -> dict:
    """Read the multipart upload of a POST (the file at most max_upload_bytes) and hand the file and its name to
    `answer` in a worker thread; its answer with the request's latency_ms."""
    t0 = time.perf_counter()
    limit = max_upload_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"request body ({declared} bytes)", max_upload_bytes)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(
            415,
            "send the audio as multipart/form-data with the file in field 'file' "
            f"(e.g. curl -F file=@clip.wav URL/{route})",
        )
    try:
        async with Request(request.scope, _capped(request.receive, limit)).form(max_files=1, max_fields=16) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "no file in form field 'file'")
            result = await run_in_threadpool(answer, upload.file, upload.filename or "upload")
    except _TooLarge:
        raise _too_large("request body", max_upload_bytes) from None
    except ClientDisconnect:
        raise HTTPException(400, "the client went away during the upload") from None
    return {**result, "latency_ms": round((time.perf_counter() - t0) * 1000, 3)}


def create_app(
    classifier: Classifier,
    max_upload_bytes: int = 10 * 2**20,
    name: str | None = None,
    workers: int = 2,
    strings: StringRecognizer | None = None,
    strings_name: str | None = None,
) -> FastAPI:
    """The page and the API around one loaded classifier and, for /transcribe, an optional digit-string model.

    Uploads are decoded in worker threads, at most `workers` at a time (which bounds memory), and the models
    see one clip at a time. Bodies are read only up to the limit; nothing is kept between requests.
    """
    name = name or classifier.cfg.model
    strings_name = strings_name or (strings.path.stem if strings is not None else "")
    page = resources.files("audiomnist").joinpath("web/index.html").read_text(encoding="utf-8")
    slots, model_lock = threading.BoundedSemaphore(workers), threading.Lock()
    app = FastAPI(title="audiomnist", summary="spoken-digit recognition", version="1")

    def answer(file, filename: str, max_seconds: float, run: Callable[[np.ndarray, int], dict]) -> dict:
        with slots:
            data = file.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                raise _too_large(filename, max_upload_bytes)
            try:
                x, sr = decode(data, max_seconds)
                with model_lock:
                    return run(x, sr) | {"filename": filename, "sample_rate": sr, "duration_s": round(len(x) / sr, 4)}
            except HTTPException as e:
                raise HTTPException(e.status_code, f"{filename}: {e.detail}") from None
            except (AudiomnistError, ValueError) as e:
                raise HTTPException(422, f"{filename}: unusable audio ({e})") from None

    def classify(x: np.ndarray, sr: int) -> dict:
        pred = classifier.predict(x, sr)
        if not np.isfinite(list(pred.probabilities.values())).all():
            raise HTTPException(422, "the model's output is not finite for this audio (samples far outside [-1, 1]?)")
        return _result(classifier, name, pred)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "model": name,
            "backend": classifier.backend,
            "classes": classifier.classes,
            "sample_rate": classifier.sample_rate,
            "max_upload_bytes": max_upload_bytes,
            "string_model": _string_health(strings, strings_name),
        }

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        max_seconds = classifier.cfg.audio.max_seconds
        return await _form_upload(
            request, "predict", max_upload_bytes, lambda f, n: answer(f, n, max_seconds, classify)
        )

    @app.post("/transcribe")
    async def transcribe(request: Request) -> dict:
        if strings is None:
            raise HTTPException(503, NO_STRINGS)
        beam = _beam(request)

        def run(x: np.ndarray, sr: int) -> dict:
            return _transcript_result(strings, strings_name, strings.transcribe(x, sr, beam), beam)

        max_seconds = strings.model.info.audio.max_seconds
        return await _form_upload(request, "transcribe", max_upload_bytes, lambda f, n: answer(f, n, max_seconds, run))

    return app


def load_strings(args: argparse.Namespace) -> tuple[StringRecognizer | None, str]:
    """The digit-string model for /transcribe: --string-model, else the shipped one when it is installed, else none
    (a model that is given but cannot be loaded is an error, not a silent fallback)."""
    if args.no_string_model:
        return None, ""
    spec = args.string_model
    if spec is None:
        try:
            resolve_model(SHIPPED_STRINGS, prefer=args.backend)
        except AudiomnistError:
            return None, ""
        spec = SHIPPED_STRINGS
    pace = pace_of(args)
    try:
        rec = StringRecognizer.load(spec, args.backend, args.threads, rescore_spec(args), pace)
    except RescorerError:
        raise  # it names the rescoring model itself
    except AudiomnistError as e:
        raise AudiomnistError(f"--string-model: {e}") from None
    rec.probabilities(np.zeros(rec.sample_rate, np.float32))  # the first call is slow; pay it before serving
    return rec, str(spec)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.max_upload_mb <= 0:
        raise AudiomnistError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.threads < 1:
        raise AudiomnistError(f"--threads must be at least 1, got {args.threads}")
    name = args.model or "default"
    clf = Classifier.load(args.model, backend=args.backend, threads=args.threads, **no_digit_options(args))
    # The first call is slow; pay it before serving (straight to the network: silence would get "no digit" unheard).
    clf.probabilities(clf.windows([np.zeros(clf.sample_rate, np.float32)]))
    rec, rec_name = load_strings(args)
    app = create_app(clf, int(args.max_upload_mb * 2**20), name, strings=rec, strings_name=rec_name)
    numbers = f"; numbers: {rec_name} ({rec.backend})" if rec else "; no digit-string model (/transcribe: 503)"
    print(
        f"audiomnist: serving {name} ({clf.backend}){numbers} on http://{args.host}:{args.port}/",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="run folder, checkpoint, .onnx file or shipped model name (default: the shipped model)"
    )
    strings = p.add_mutually_exclusive_group()
    strings.add_argument(
        "--string-model",
        metavar="RUN_DIR|CHECKPOINT|MODEL.onnx|NAME",
        help=f"digit-string model for POST /transcribe and the page's number mode (default: the shipped "
        f"{SHIPPED_STRINGS!r} when installed, else /transcribe answers 503)",
    )
    strings.add_argument("--no-string-model", action="store_true", help="serve no /transcribe (503), only digits")
    add_rescore_arguments(p)
    add_pace_argument(p)
    p.add_argument("--backend", choices=BACKENDS, help="default: by the model (.onnx: onnx, checkpoint: torch)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    add_no_digit_arguments(p)
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload in MiB (bigger: 413)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per inference (requests run one at a time; 1 is fastest for the small models)",
    )
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")
    p.set_defaults(func=cmd_serve)
