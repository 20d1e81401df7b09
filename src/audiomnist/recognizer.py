"""Whole numbers from audio: a digit-string model (CTC) behind one interface for ONNX Runtime and torch.

    rec = StringRecognizer.load()                 # the shipped string model ("strings")
    rec.transcribe(waveform, sample_rate).digits  # "4155551234"

An .onnx string model runs without torch: its graph takes "waveform" (1, samples) at the model's rate, any length,
and gives "probabilities" (frames, 11) over ctc.STRING_CLASSES; ctc.decode turns them into digits. A checkpoint
runs in torch (string_model, imported by name only then).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import audio_problem, full_scale, load_audio, resample
from .ctc import STRING_CLASSES, decode, is_string_config
from .errors import AudiomnistError
from .onnx_model import INPUT, OUTPUT, ModelInfo, onnx_session, read_sidecar, resolve_model, torch_available

SHIPPED = "strings"
TASK = "strings"
TORCH_SIDE = "audiomnist.string_model"
OUTPUT_STRIDE = 4  # feature frames per output frame of a string model


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
        self.hop = int(side["config"]["features"]["hop_length"])
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
        self.info, self.hop = cfg, cfg.features.hop_length
        self.pipeline = side.StringNet(net, cfg)
        self._run = side.probabilities

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        return self._run(self.pipeline, [wave])[0]


class StringRecognizer:
    def __init__(self, backend_model, backend: str, path: Path):
        self.model, self.backend, self.path = backend_model, backend, path

    @classmethod
    def load(cls, spec: str | os.PathLike | None = None, backend: str | None = None, threads: int | None = None):
        """From a string run folder, checkpoint, .onnx export or shipped name (None: the shipped "strings")."""
        path = resolve_model(SHIPPED if spec is None else spec, prefer=backend)
        if path.suffix == ".onnx":
            return cls(_OnnxStrings(path, threads), "onnx", path)
        return cls(_TorchStrings(path, threads), "torch", path)

    @property
    def sample_rate(self) -> int:
        return self.model.info.audio.sample_rate

    @property
    def frame_seconds(self) -> float:
        return OUTPUT_STRIDE * self.model.hop / self.sample_rate

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """(frames, 11) probabilities of mono float32 audio at the model's rate."""
        return self.model.probabilities(np.asarray(wave, np.float32))

    def transcribe(self, wave: np.ndarray, sample_rate: int, beam: int = 1, path: str | None = None) -> Transcript:
        """The digits said in mono (or (frames, channels)) audio at any rate; unusable audio gets no digits and a
        reason (audio.audio_problem)."""
        w = np.asarray(wave, dtype=np.float32)
        w = w.mean(axis=1) if w.ndim == 2 else w
        why = audio_problem(w, sample_rate) if w.size else "too short"
        if why is not None:
            return Transcript("", [], why, path)
        if sample_rate != self.sample_rate:
            w = resample(w, sample_rate, self.sample_rate, self.model.info.audio.resample_quality)
        hits = decode(self.probabilities(full_scale(w)), beam)
        t = self.frame_seconds
        words = [Digit(h.digit, round(h.confidence, 4), round((h.frame + 1) * t, 3)) for h in hits]
        return Transcript("".join(h.digit for h in hits), words, None, path)

    def transcribe_file(self, path: str | os.PathLike, beam: int = 1) -> Transcript:
        a = self.model.info.audio
        w = load_audio(path, a.sample_rate, None, a.resample_quality, allow_nonfinite=True)
        return self.transcribe(w, a.sample_rate, beam, os.fspath(path))


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


__all__ = ["STRING_CLASSES", "StringRecognizer", "Transcript", "is_string_model"]
