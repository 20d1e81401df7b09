"""Live digits from a microphone, or from a recording cut into the same voice segments.

    audiomnist listen                      push-to-talk: Enter records 1.5 s and prints the digit; q + Enter quits
    audiomnist listen --continuous         say a number (no pauses needed); prints each digit as it is final
    audiomnist listen --input FILE         a recording of a number -> its digits (each voice segment decoded whole)
    audiomnist listen --continuous --isolated   digits with pauses between, each classified by a single-digit model
    audiomnist listen --list-devices       microphones PortAudio can see (pick one with --device)

The microphone needs PortAudio (Debian/Ubuntu: sudo apt install libportaudio2); --input does not.
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TextIO

import numpy as np

from .errors import AudiomnistError
from .infer import BACKENDS, Classifier, Prediction, add_no_digit_arguments, no_digit_options
from .onnx_model import resolve_model
from .recognizer import SHIPPED as SHIPPED_STRINGS
from .recognizer import (
    SHIPPED_LIVE,
    StringRecognizer,
    add_pace_argument,
    add_rescore_arguments,
    is_string_model,
    pace_of,
    rescore_spec,
)
from .stream import Detection, VadConfig, join_labels, transcribe, transcribe_file
from .string_stream import StreamDigit, stream_digits, stream_file

QUIT = {"q", "quit", "exit"}


def load_sounddevice():
    """The sounddevice module, or an AudiomnistError saying which library is missing and how to get it."""
    try:
        import sounddevice
    except OSError as e:  # the Python package is there but libportaudio is not
        raise AudiomnistError(
            f"the microphone needs the PortAudio library, which was not found ({e}). Install it: "
            "Debian/Ubuntu `sudo apt install libportaudio2`, Fedora `sudo dnf install portaudio`, "
            "macOS `brew install portaudio` (the Windows and macOS sounddevice wheels include it). "
            "Without a microphone, transcribe a recording with --input FILE."
        ) from None
    except ImportError:
        raise AudiomnistError(
            "the microphone needs the sounddevice package: pip install sounddevice (or use --input FILE)"
        ) from None
    return sounddevice


def _device(spec: str | None) -> int | str | None:
    return int(spec) if spec is not None and spec.strip().isdigit() else spec


def _name(device: int | str | None) -> str:
    return "(default)" if device is None else str(device)


def input_device(sd, device: int | str | None) -> dict:
    """The input device's description; its default_samplerate (44.1 or 48 kHz for most) is used, then resampled."""
    try:
        return sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as e:
        which = "no default input device" if device is None else f"no usable input device {device}"
        raise AudiomnistError(f"{which} ({e}); see `audiomnist listen --list-devices`, or use --input FILE") from None


def recorder(sd, device: int | str | None, sample_rate: int) -> Callable[[float], np.ndarray]:
    """A function that records `seconds` of mono float32 audio from the device and returns it."""

    def record(seconds: float) -> np.ndarray:
        try:
            x = sd.rec(
                max(1, round(seconds * sample_rate)), samplerate=sample_rate, channels=1, dtype="float32", device=device
            )
            sd.wait()
        except sd.PortAudioError as e:
            raise AudiomnistError(f"cannot record from input device {_name(device)}: {e}") from None
        return x[:, 0]

    return record


def microphone(
    sd, device: int | str | None, sample_rate: int, stop: threading.Event, block_ms: float = 100.0
) -> Iterator[np.ndarray]:
    """Mono float32 blocks from the device until `stop` is set; the audio callback only copies into a queue.

    Blocks already captured when `stop` is set are still delivered, so the last digit is not lost.
    """
    blocks: queue.Queue[np.ndarray] = queue.Queue()

    def callback(indata, frames, time, status) -> None:
        if status:
            print(f"[audio: {status}]", file=sys.stderr)
        blocks.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(
            samplerate=sample_rate,
            blocksize=round(sample_rate * block_ms / 1000),
            device=device,
            channels=1,
            dtype="float32",
            callback=callback,
        )
    except sd.PortAudioError as e:
        raise AudiomnistError(f"cannot open input device {_name(device)}: {e}") from None
    with stream:
        while not stop.is_set():
            try:
                yield blocks.get(timeout=0.1)
            except queue.Empty:
                continue
    while not blocks.empty():
        yield blocks.get()


def level_db(x: np.ndarray) -> float:
    """Peak level in dBFS: tells a silent or muted microphone from a quiet speaker."""
    return float(20 * np.log10(np.max(np.abs(x), initial=0.0) + 1e-10))


def push_to_talk(
    classifier: Classifier,
    record: Callable[[float], np.ndarray],
    sample_rate: int,
    seconds: float = 1.5,
    lines: Iterable[str] | None = None,
    out: TextIO | None = None,
) -> list[Prediction]:
    """Enter records `seconds` and prints the digit and its probability; q (or end of input) quits.

    lines: the typed lines (default stdin); record: seconds -> mono float32 at sample_rate (the microphone).
    """
    lines = sys.stdin if lines is None else lines
    out = sys.stdout if out is None else out
    heard = []
    print(f"press Enter, then say one digit within {seconds:g} s; q + Enter quits", file=out, flush=True)
    for line in lines:
        if line.strip().lower() in QUIT:
            break
        print("recording...", file=out, flush=True)
        x = record(seconds)
        p = classifier.predict(x, sample_rate)
        peak = level_db(x)
        hint = "  very quiet: is the microphone muted or far away?" if peak < -45 else ""
        if p.label is None:  # nothing to report as a digit: say so, and keep it out of what was heard
            print(f"no digit heard ({p.reason}, peak {peak:.0f} dBFS){hint}", file=out, flush=True)
            continue
        heard.append(p)
        print(f"{p.label}  (p={p.probability:.2f}, peak {peak:.0f} dBFS){hint}", file=out, flush=True)
    return heard


def print_stream(
    detections: Iterable[Detection], kept: list[str], min_probability: float = 0.0, out: TextIO | None = None
) -> None:
    """One line per detection with the running string; digits at or above min_probability are appended to `kept`."""
    out = sys.stdout if out is None else out
    for d in detections:
        p = d.prediction
        if p.label is None:  # a click or a burst of noise the detector took for a word: not a digit
            print(f"{d.start:7.2f}-{d.end:.2f} s  -  skipped: {p.reason}", file=out, flush=True)
            continue
        ok = p.probability >= min_probability
        if ok:
            kept.append(p.label)
        note = "" if ok else "  (left out: below --min-prob)"
        print(
            f"{d.start:7.2f}-{d.end:.2f} s  {p.label}  p={p.probability:.2f}  {join_labels(kept)}{note}",
            file=out,
            flush=True,
        )


def wants_strings(args: argparse.Namespace) -> bool:
    """A digit-string model for --continuous and --input: the one given, else the shipped one (unless --isolated or
    a single-digit --model is given); push-to-talk keeps the single-digit model."""
    if args.isolated or not (args.continuous or args.input):
        return False
    if args.model is not None:
        return is_string_model(args.model)
    try:
        resolve_model(SHIPPED_LIVE if args.continuous and not args.input else SHIPPED_STRINGS, prefer=args.backend)
    except AudiomnistError:
        return False
    return True


def print_digits(digits: Iterable[StreamDigit], min_probability: float = 0.0, out: TextIO | None = None) -> str:
    """One line per digit as it becomes final, with the running number; returns the number."""
    out = sys.stdout if out is None else out
    kept = ""
    for d in digits:
        ok = d.confidence >= min_probability
        kept += d.digit if ok else ""
        note = "" if ok else "  (left out: below --min-prob)"
        print(f"{d.time:7.2f} s  {d.digit}  p={d.confidence:.2f}  {kept}{note}", file=out, flush=True)
    return kept


def _listen_strings(sd, device, rate: int, info: dict, args: argparse.Namespace) -> int:
    rec = StringRecognizer.load(args.model or SHIPPED_LIVE, args.backend, args.threads, rescore_spec(args))
    print(f"microphone: {info['name']} at {rate} Hz (the string model hears {rec.sample_rate} Hz)", file=sys.stderr)
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop, sys.stdin), daemon=True).start()
    print("say a number (phone number, PIN, code); q + Enter or Ctrl+C stops", file=sys.stderr, flush=True)
    blocks = microphone(sd, device, rate, stop)
    number = ""
    try:
        number = print_digits(stream_digits(blocks, rec, rate), args.min_prob)
    except KeyboardInterrupt:
        pass
    finally:
        blocks.close()
    print(number)
    return 0


def _watch_stdin(stop: threading.Event, lines: Iterable[str]) -> None:
    for line in lines:
        if line.strip().lower() in QUIT:
            stop.set()
            return


def cmd_listen(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise AudiomnistError(f"--seconds must be positive, got {args.seconds}")
    if args.list_devices:
        devices = load_sounddevice().query_devices()
        print(
            devices if len(devices) else "no audio devices found (is a microphone connected, and may this user use it?)"
        )
        return 0
    try:
        vad = VadConfig() if args.end_silence_ms is None else replace(VadConfig(), end_silence_ms=args.end_silence_ms)
    except ValueError as e:
        raise AudiomnistError(f"--end-silence-ms: {e}") from None
    kept: list[str] = []
    strings = wants_strings(args)
    if args.input:
        if strings:
            rec = StringRecognizer.load(args.model, args.backend, args.threads, rescore_spec(args), pace_of(args))
            # A recording is heard whole: each voice segment is decoded once, when it closes (live, open segments
            # are decoded as they grow so digits come early; a file has no one waiting for them).
            print(print_digits(stream_file(args.input, rec, every_ms=math.inf), args.min_prob))
            return 0
        clf = Classifier.load(args.model, backend=args.backend, threads=args.threads, **no_digit_options(args))
        print_stream(transcribe_file(args.input, clf, vad), kept, args.min_prob)
        print(join_labels(kept))
        return 0
    sd = load_sounddevice()
    device = _device(args.device)
    info = input_device(sd, device)
    rate = int(info["default_samplerate"])
    if strings and args.continuous:
        return _listen_strings(sd, device, rate, info, args)
    clf = Classifier.load(args.model, backend=args.backend, threads=args.threads, **no_digit_options(args))
    print(
        f"microphone: {info['name']} at {rate} Hz (the model hears {clf.sample_rate} Hz)", file=sys.stderr, flush=True
    )
    if not args.continuous:
        push_to_talk(clf, recorder(sd, device, rate), rate, args.seconds)
        return 0
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop, sys.stdin), daemon=True).start()
    print("say digits with short pauses; q + Enter or Ctrl+C stops", file=sys.stderr, flush=True)
    blocks = microphone(sd, device, rate, stop)
    try:
        print_stream(transcribe(blocks, clf, rate, vad), kept, args.min_prob)
    except KeyboardInterrupt:
        pass
    finally:
        blocks.close()
    print(join_labels(kept))
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="run folder, checkpoint, .onnx file or shipped model name (default: the shipped model)"
    )
    p.add_argument("--backend", choices=BACKENDS, help="default: by the model (.onnx: onnx, checkpoint: torch)")
    p.add_argument("--threads", type=int, help="CPU threads for the network (one is plenty for real time)")
    p.add_argument("--seconds", type=float, default=1.5, help="push-to-talk recording length (default 1.5)")
    p.add_argument(
        "--continuous", action="store_true", help="segment digits from the live stream with voice-activity detection"
    )
    p.add_argument(
        "--input",
        metavar="FILE",
        help="a recording instead of the microphone: the live path's voice segments, each "
        "decoded whole (default string model: the shipped strings-emb; live: strings)",
    )
    p.add_argument("--device", help="input device number or name (see --list-devices; default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "--isolated",
        action="store_true",
        help="cut at pauses and classify each piece with a single-digit model (default for --continuous and --input: "
        "the digit-string model, which needs no pauses)",
    )
    add_rescore_arguments(p)
    add_pace_argument(p)
    add_no_digit_arguments(p)  # a detection under --min-prob is skipped ("low confidence") and left out of the string
    p.add_argument(
        "--end-silence-ms", type=float, help=f"pause that ends a digit (default {VadConfig().end_silence_ms:g})"
    )
    p.set_defaults(func=cmd_listen)
