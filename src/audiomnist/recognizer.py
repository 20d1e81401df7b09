"""Whole numbers from audio: a digit-string model (CTC) behind one interface for ONNX Runtime and torch.

    rec = StringRecognizer.load()                 # the shipped string model for recordings, on ONNX Runtime
    rec.transcribe(waveform, sample_rate).digits  # "4155551234"

Two string models ship. "strings-emb" (emb-ctc over the speech_embedding encoder, which heard many real voices) is
the default for whole recordings: `transcribe`, `listen --input`, `serve`'s /transcribe. "strings" (ctc-tcn over
log-mel, ~150 ms of lookahead) is the live stream's (`listen --continuous`): re-decoding a growing segment every
50 ms through the encoder would cost several times real time on one core (README, Decisions).

An .onnx string model runs without torch: its graph takes "waveform" (1, samples) at the model's rate, any length,
and gives "probabilities" (frames, 11) over ctc.STRING_CLASSES; ctc.decode turns them into digits. A checkpoint
runs in torch (string_model, imported by name only then).

The string model finds the digits and where each one is; by default the shipped single-digit model then hears each
digit's stretch of audio again, and each digit is the one both models find likeliest together (`rescore`). The
single-digit network (2-D, trained on clips) hears a word better than the string model does, and the string model
knows where the words are (experiments/strings/README.md, "Rescoring").

A whole utterance whose digits came faster than `pace` a second is decoded again slowed to that pace, pitch kept
(ctc.steady_tempo, tempo.change_tempo): the encoder's windows hold fewer quick digits then (experiments/strings/
README.md, "Slowed down"). A live stream's segments are not: their first digits are printed while they are said.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import BAD_SAMPLES, TOO_SHORT, audio_problem, bad_samples, full_scale, load_audio, resample
from .ctc import (
    STEADY_PACE,
    STRING_CLASSES,
    DigitHit,
    decode,
    is_string_config,
    pad_edges,
    rescore,
    steady_tempo,
    timing,
    word_segments,
)
from .errors import AudiomnistError
from .infer import Classifier
from .onnx_model import INPUT, OUTPUT, ModelInfo, onnx_session, read_sidecar, resolve_model, torch_available
from .tempo import change_tempo

SHIPPED = "strings-emb"  # whole recordings
SHIPPED_LIVE = "strings"  # a live stream, decoded as it grows
TASK = "strings"
TORCH_SIDE = "audiomnist.string_model"
RESCORER = "default"  # the single-digit model that hears each digit again (None: the string model alone)


@dataclass(frozen=True)
class Digit:
    digit: str
    confidence: float
    time: float  # seconds from the start of the audio to the output frame where the digit peaked


@dataclass(frozen=True)
class Transcript:
    """What was said: the digit string (empty: no digit heard, and `reason` says why when the audio was unusable)."""

    digits: str
    words: list[Digit] = field(default_factory=list)
    reason: str | None = None
    path: str | None = None
    tempo: float = 1.0  # how fast the model heard the audio: 1 as recorded, < 1 a quick number slowed down

    def to_dict(self) -> dict:
        return asdict(self)


def is_string_onnx(path: str | os.PathLike) -> bool:
    return Path(path).suffix == ".onnx" and read_sidecar(path).get("task") == TASK


class _OnnxStrings:
    def __init__(self, path: Path, threads: int | None):
        side = read_sidecar(path)
        if side.get("task") != TASK:
            raise AudiomnistError(f"{path}: a single-digit model, not a digit-string model")
        self.info = ModelInfo.from_config(side["config"])
        self.timing = timing(side["config"])
        self.session = onnx_session(path, threads)

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        (p,) = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(wave[None], dtype=np.float32)})
        return p


class _TorchStrings:
    def __init__(self, path: Path, threads: int | None):
        try:
            side = importlib.import_module(TORCH_SIDE)
        except ImportError:
            if torch_available():
                raise
            raise AudiomnistError("string-model checkpoints need torch; use its .onnx export without it") from None
        if threads:
            side.torch.set_num_threads(threads)
        net, cfg = side.load(path)
        self.info, self.timing = cfg, timing(asdict(cfg))
        self.pipeline = side.StringNet(net, cfg)
        self._run = side.probabilities

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        return self._run(self.pipeline, [wave])[0]


class RescorerError(AudiomnistError):
    """The rescoring model, not the string model, cannot be used (callers name the option that chose it)."""


def _digit_columns(classes: list[str]) -> list[int]:
    missing = [d for d in STRING_CLASSES[1:] if d not in classes]
    if missing:
        raise RescorerError(f"a rescoring model must know the ten digits; it lacks {', '.join(missing)}")
    return [classes.index(d) for d in STRING_CLASSES[1:]]


class StringRecognizer:
    def __init__(
        self, backend_model, backend: str, path: Path, rescorer: Classifier | None = None, rescorer_name="",
        pace: float | None = STEADY_PACE,
    ):  # fmt: skip
        self.model, self.backend, self.path = backend_model, backend, path
        self.pace = pace  # digits a second above which a whole utterance is slowed (None: never; a live stream's)
        self.rescorer = rescorer
        self.rescorer_name = (rescorer_name or "custom") if rescorer is not None else None  # what /transcribe reports
        self._columns = _digit_columns(rescorer.classes) if rescorer is not None else []

    @classmethod
    def load(
        cls,
        spec: str | os.PathLike | None = None,
        backend: str | None = None,
        threads: int | None = None,
        rescore: str | os.PathLike | None = RESCORER,
        pace: float | None = STEADY_PACE,
    ):
        """From a string run folder, checkpoint, .onnx export or shipped name (None: the shipped SHIPPED); `rescore`
        names the single-digit model that hears each digit again (Classifier.load's spec; None: no rescoring);
        `pace`: a whole utterance whose digits come faster is slowed to it (None: heard as recorded, as a live
        stream must be: its digits are printed before the utterance ends)."""
        if pace is not None and not (np.isfinite(pace) and pace > 0):
            raise AudiomnistError(f"pace must be a positive number of digits a second, got {pace}")
        spec = SHIPPED if spec is None else spec
        # The shipped string model runs on ONNX Runtime unless torch is asked for: the same probabilities, and a
        # stream keeps up on one CPU thread (README, Decisions).
        path = resolve_model(spec, prefer=backend or ("onnx" if os.fspath(spec) in (SHIPPED, SHIPPED_LIVE) else None))
        model = _OnnxStrings(path, threads) if path.suffix == ".onnx" else _TorchStrings(path, threads)
        rescorer = None
        if rescore is not None:
            try:
                # An .onnx string model gets an ONNX Runtime rescorer too: the same runtime, no torch needed. The
                # shipped rescorer runs there by default as well: the same probabilities, several times faster on a
                # CPU (README, Decisions).
                ears = backend or ("onnx" if path.suffix == ".onnx" or rescore == RESCORER else None)
                rescorer = Classifier.load(rescore, backend=ears, threads=threads)
            except AudiomnistError as e:
                raise RescorerError(f"rescoring model: {e}") from None
        backend_name = "onnx" if path.suffix == ".onnx" else "torch"
        return cls(model, backend_name, path, rescorer, os.fspath(rescore or ""), pace)

    @property
    def sample_rate(self) -> int:
        return self.model.info.audio.sample_rate

    @property
    def stream_hold_seconds(self) -> float:
        """The least time a stream must wait after a digit's time before the digit is final (0: no constraint)."""
        return self.model.timing.hold_s

    @property
    def frame_seconds(self) -> float:
        return self.model.timing.frame_s

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """(frames, 11) probabilities of mono float32 audio at the model's rate."""
        return self.model.probabilities(np.asarray(wave, np.float32))

    def transcribe(
        self, wave: np.ndarray, sample_rate: int, beam: int = 1, path: str | None = None, rescore_from: int = 0,
        rescore_until: float = np.inf, speech_known: bool = False, ended: bool = True, segment: bool = False,
        slow: bool = True,
    ) -> Transcript:  # fmt: skip
        """The digits said in mono (or (frames, channels)) audio at any rate; unusable audio gets no digits and a
        reason (audio.audio_problem). Only digits from the `rescore_from`-th on, peaking by `rescore_until` seconds,
        are rescored: a stream has printed the ones before and will decode again before it prints the ones after.
        `speech_known`: the audio begins with audio already found to hold speech (a stream's growing segment), so
        only its samples are checked, not again its signal and pitch. `ended`: the utterance ends with the audio
        (not a stream's open segment), so background is put after it for the model to hear its last word
        (pad_edges); `segment`: the audio is a stream's segment, which starts with the detector's own background,
        so none is put before it (every decode of a segment then sees the same frames). `slow`: an ended utterance
        said faster than `self.pace` is heard again slowed to it (a live stream's segment is not: its first digits
        were printed from the audio as recorded)."""
        w = np.asarray(wave, dtype=np.float32)
        w = w.mean(axis=1) if w.ndim == 2 else w
        # Gated at the model's rate, as Classifier does; a NaN or 1e30 is judged before resampling spreads it.
        if w.size and sample_rate != self.sample_rate and not bad_samples(w):
            w = resample(w, sample_rate, self.sample_rate, self.model.info.audio.resample_quality)
            sample_rate = self.sample_rate
        if speech_known and w.size:
            why = BAD_SAMPLES if bad_samples(w) else None
        else:
            why = audio_problem(w, sample_rate) if w.size else TOO_SHORT
        if why is not None:
            return Transcript("", [], why, path)
        duration, w = len(w) / sample_rate, full_scale(w)
        padded, lead, probs, hits = self._decode(w, sample_rate, beam, segment, ended)
        tempo = self.tempo_for(hits) if ended and slow else 1.0  # an open segment's pace is not known yet
        if tempo != 1.0:
            padded, lead, probs, hits = self._decode(
                change_tempo(w, sample_rate, tempo), sample_rate, beam, segment, ended
            )
        t, after = self.frame_seconds, self.model.timing.word_end_s
        # Seconds into the audio given (the model's seconds times the tempo, where it heard the audio slowed).
        ends = [min(max(h.frame * t + after - lead, 0.0), duration / tempo) * tempo for h in hits]
        todo = [i for i, end in enumerate(ends) if i >= rescore_from and end <= rescore_until]
        if self.rescorer is not None and todo:
            done = rescore([hits[i] for i in todo], probs, self.rescorer_probabilities(hits, padded, todo))
            hits = [*hits[: todo[0]], *done, *hits[todo[-1] + 1 :]]
        words = [Digit(h.digit, round(h.confidence, 4), round(end, 3)) for h, end in zip(hits, ends)]
        return Transcript("".join(h.digit for h in hits), words, None, path, round(tempo, 3))

    def _decode(self, w: np.ndarray, sample_rate: int, beam: int, segment: bool, ended: bool):
        """(the padded audio, the seconds put before it, probabilities, digits) of audio at the model's rate."""
        w, lead = pad_edges(w, sample_rate, lead=not segment, tail=ended)
        probs = self.probabilities(w)
        return w, lead, probs, decode(probs, beam, min_gap=self.model.timing.min_gap)

    def tempo_for(self, hits: list[DigitHit]) -> float:
        """How much to slow an utterance whose first decoding found `hits` (ctc.steady_tempo; 1: not at all)."""
        return 1.0 if self.pace is None else steady_tempo(hits, self.frame_seconds, self.pace)

    def rescorer_probabilities(self, hits: list[DigitHit], wave: np.ndarray, todo: list[int]) -> np.ndarray:
        """(len(todo), 10) digit probabilities of the rescoring model, each on its hit's word_segments stretch; NaN
        rows for stretches the audio gate finds no speech in (the network is never asked about silence)."""
        clf, sr = self.rescorer, self.sample_rate
        every = word_segments(hits, wave, sr, self.frame_seconds, self.model.timing.cut_s)
        segs = [every[i] for i in todo]
        if clf.sample_rate != sr:
            segs = [resample(s, sr, clf.sample_rate, clf.cfg.audio.resample_quality) for s in segs]
        return clf.gated_probabilities(segs)[1][:, self._columns]

    def transcribe_file(self, path: str | os.PathLike, beam: int = 1) -> Transcript:
        a = self.model.info.audio
        w = load_audio(path, a.sample_rate, None, a.resample_quality, allow_nonfinite=True)
        return self.transcribe(w, a.sample_rate, beam, os.fspath(path))


def add_rescore_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--rescore-model",
        default=RESCORER,
        metavar="RUN_DIR|CHECKPOINT|MODEL.onnx|NAME",
        help=f"single-digit model that hears each digit of a number again (default: the shipped {RESCORER!r})",
    )
    group.add_argument("--no-rescore", action="store_true", help="numbers from the digit-string model alone")


def rescore_spec(args: argparse.Namespace) -> str | None:
    return None if args.no_rescore else args.rescore_model


def add_pace_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steady-pace",
        type=float,
        default=STEADY_PACE,
        metavar="DIGITS_PER_S",
        help="a whole recording whose digits come faster than this many a second is heard again slowed to it, "
        f"pitch kept (default {STEADY_PACE}; 0: never; a live stream is never slowed)",
    )


def pace_of(args: argparse.Namespace) -> float | None:
    """--steady-pace as StringRecognizer.load's `pace` (0: None, never slowed)."""
    if not (np.isfinite(args.steady_pace) and args.steady_pace >= 0):
        raise AudiomnistError(f"--steady-pace must be a number of digits a second (0: never), got {args.steady_pace}")
    return args.steady_pace or None


def is_string_model(spec: str | os.PathLike | None) -> bool:
    """Whether a model spec names a digit-string model (an .onnx sidecar's task, or a checkpoint's run config)."""
    if spec is None:
        return False
    path = resolve_model(spec)
    if path.suffix == ".onnx":
        return is_string_onnx(path)
    # A run folder's config.json, or the metadata a shipped checkpoint has beside it (same name, .json).
    beside = path.parent / "config.json" if path.name in ("best.pt", "last.pt") else path.with_suffix(".json")
    try:
        meta = json.loads(beside.read_text())
    except (OSError, ValueError):
        return False
    return is_string_config(meta) or (isinstance(meta, dict) and meta.get("task") == TASK)


__all__ = [
    "STRING_CLASSES",
    "RescorerError",
    "StringRecognizer",
    "Transcript",
    "add_pace_argument",
    "add_rescore_arguments",
    "is_string_model",
    "pace_of",
    "rescore_spec",
]
