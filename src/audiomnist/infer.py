"""Run a trained model on audio: arrays, files and folders, with PyTorch or ONNX Runtime.

    audiomnist predict FILES_OR_DIRS [--model RUN_DIR|CHECKPOINT|MODEL.onnx|default] [--format table|json|csv]
                       [--min-prob P]

With no --model the small model shipped in the package is used (see MODEL_CARD.md), so this works right after install:
its checkpoint where torch is installed, else its ONNX export (pretrained/default.onnx). An .onnx model runs on
ONNX Runtime, numpy, soundfile and soxr alone: this module never imports torch itself, and loads the torch side
(torch_infer) only for checkpoints.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .audio import (
    NO_SPEECH,  # noqa: F401
    audio_problem,
    bad_samples,
    centre_on_speech,
    fit_windows,
    full_scale,
    load_audio,
    resample,
)
from .errors import AudioError, AudiomnistError
from .onnx_model import NONE_CLASS, PRETRAINED, OnnxPipeline, check_none_threshold, resolve_model, torch_available
from .sources import IGNORED_DIRS, NOT_AUDIO, audio_file_rule, parse_label, path_problem, truncation

try:
    from tqdm.auto import tqdm
except ImportError:  # a torch-free install may leave it out: no progress bar then
    tqdm = None

__all__ = [
    "BACKENDS",
    "LOW_CONFIDENCE",
    "NOT_A_DIGIT",
    "PRETRAINED",
    "Classifier",
    "Prediction",
    "find_audio",
    "label_from_name",
    "resolve_model",
]
BACKENDS = ("torch", "onnx")
TORCH_SIDE = "audiomnist.torch_infer"  # imported by name for checkpoints only, so .onnx models never load torch
# The network's own answers of no digit: its "none" class (a model trained with --negative), or a top probability
# (calibrated by the model's temperature) under min_prob.
NOT_A_DIGIT, LOW_CONFIDENCE = "not a digit", "low confidence"
# Off by default: measured on held-out speakers, every threshold that rejects more non-digits loses more real digits
# (experiments/no-digit/README.md); raise it where a wrong digit costs more than a missed one.
DEFAULT_MIN_PROB = 0.0
# None: the model's own threshold (stored with it; the shipped model has one), else "not a digit" when the none
# class is the most likely one. A threshold P answers it only when p(none) >= P (P above 0.5 keeps more real digits
# and lets more non-digits through; the curve is in experiments/no-digit).
DEFAULT_NONE_THRESHOLD = None


@dataclass(frozen=True)
class Prediction:
    """One clip's answer: the most likely class, its probability, and every class's probability.

    `label` None means no digit, and `reason` says why: the clip cannot hold one (audio_problem: `probability` 0 and
    no probabilities, the network never saw it), the network says it is not a digit (NOT_A_DIGIT: its "none" class
    won, or p(none) reached none_threshold) or is not sure enough (LOW_CONFIDENCE: the best digit's probability is
    under min_prob); `probability` is then the top class's (the best digit's for LOW_CONFIDENCE).
    """

    label: str | None
    probability: float
    probabilities: dict[str, float]
    path: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _torch_side():
    try:
        return importlib.import_module(TORCH_SIDE)
    except ImportError as e:
        if getattr(e, "name", None) != "torch" and torch_available():
            raise
        raise AudiomnistError(
            "PyTorch checkpoints need torch (pip install 'audiomnist[train]'); without it use an .onnx export "
            "(`audiomnist export MODEL --onnx OUT.onnx` where torch is installed) or the shipped model"
        ) from None


class Classifier:
    """A trained model with the exact audio settings it was trained with, behind one interface for both backends.

    `pipeline` maps (B, num_samples) windows to (B, classes) probabilities: onnx_model.OnnxPipeline or
    torch_infer.TorchPipeline. `cfg` is the run's TrainConfig for a checkpoint and an onnx_model.ModelInfo for an
    .onnx file; both have .model, .target and .audio.
    """

    def __init__(
        self,
        pipeline,
        cfg,
        classes: list[str],
        backend: str,
        min_prob: float = DEFAULT_MIN_PROB,
        none_threshold: float | None = DEFAULT_NONE_THRESHOLD,
    ):
        if not 0.0 <= min_prob <= 1.0:
            raise AudiomnistError(f"min_prob must be between 0 and 1, got {min_prob}")
        none_threshold = check_none_threshold(none_threshold, "Classifier")
        if none_threshold is None:
            none_threshold = getattr(pipeline, "none_threshold", None)
        self.none_threshold = none_threshold  # None: the none class answers when it is the most likely
        self.pipeline = pipeline
        self.cfg = cfg
        self.classes = list(classes)
        self.backend = backend
        self.min_prob = float(min_prob)  # a top class less probable than this is answered LOW_CONFIDENCE

    @property
    def temperature(self) -> float:
        """The calibration the pipeline applies to the network's logits (1.0: none)."""
        return float(getattr(self.pipeline, "temperature", 1.0))

    @classmethod
    def load(
        cls,
        spec: str | os.PathLike | None = None,
        backend: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
        min_prob: float = DEFAULT_MIN_PROB,
        none_threshold: float | None = DEFAULT_NONE_THRESHOLD,
    ) -> Classifier:
        """From a run folder, checkpoint, shipped name (None: the default model) or .onnx file (with its .json sidecar).

        An .onnx file runs on ONNX Runtime without torch. A checkpoint runs in torch, or with backend "onnx" on ONNX
        Runtime through its export, made once into data_home()/onnx (keyed by its content) and reused. backend None
        picks by the file; for a shipped name, "onnx" takes its shipped .onnx export. A top probability under
        `min_prob` is answered "no digit" (LOW_CONFIDENCE); `none_threshold`: see Classifier.
        """
        if backend is not None and backend not in BACKENDS:
            raise AudiomnistError(f"unknown backend {backend!r}: choose {' or '.join(BACKENDS)}")
        path = resolve_model(spec, prefer=backend)
        if path.suffix == ".onnx":
            pipeline = OnnxPipeline(path, threads)
            return cls(pipeline, pipeline.info, pipeline.classes, "onnx", min_prob, none_threshold)
        pipeline, cfg, classes = _torch_side().load_checkpoint_model(path, backend or "torch", device, threads)
        return cls(pipeline, cfg, classes, backend or "torch", min_prob, none_threshold)

    @property
    def sample_rate(self) -> int:
        return self.cfg.audio.sample_rate

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(B, num_samples) windows at the model's rate -> (B, classes) probabilities."""
        return self.pipeline.probabilities(windows)

    def windows(self, clips: list[np.ndarray]) -> np.ndarray:
        """Clips already at the model's rate -> (B, num_samples) windows, each centred on its word (a recording's
        silence around it does not move it), speech longer than a window cropped on its energy."""
        a = self.cfg.audio
        placed = [centre_on_speech(full_scale(np.asarray(c, dtype=np.float32)), a.num_samples, a.sample_rate)
                  for c in clips]  # fmt: skip
        return fit_windows([x for x, _ in placed], a, [centre for _, centre in placed])

    def _answer(self, p: np.ndarray, path: str | None = None) -> Prediction:
        i = int(p.argmax())
        if NONE_CLASS in self.classes and self.none_threshold is not None:
            none = self.classes.index(NONE_CLASS)
            if p[none] < self.none_threshold:  # not "none": the best digit, even where none is more likely
                i = int(np.argmax(np.where(np.arange(len(p)) == none, -np.inf, p)))
            else:
                i = none
        label, reason = self.classes[i], None
        if label == NONE_CLASS:
            label, reason = None, NOT_A_DIGIT
        elif p[i] < self.min_prob:
            label, reason = None, LOW_CONFIDENCE
        return Prediction(label, float(p[i]), {c: float(v) for c, v in zip(self.classes, p)}, path, reason)

    def gated_probabilities(self, clips: list[np.ndarray]) -> tuple[list[str | None], np.ndarray]:
        """Clips at the model's rate -> (audio_problem of each, (clips, classes) probabilities); a clip with a
        problem is never shown to the network and its row is NaN."""
        problems = [audio_problem(c, self.sample_rate) for c in clips]
        good = [i for i, why in enumerate(problems) if why is None]
        out = np.full((len(clips), len(self.classes)), np.nan)
        if good:
            out[good] = self.probabilities(self.windows([clips[i] for i in good]))
        return problems, out

    def _answers(self, clips: list[np.ndarray], paths: list[str | None]) -> list[Prediction]:
        """Clips at the model's rate -> predictions; clips audio_problem rejects get no digit, unseen by the net."""
        problems, probs = self.gated_probabilities(clips)
        return [
            self._answer(q, p) if why is None else Prediction(None, 0.0, {}, p, why)
            for why, q, p in zip(problems, probs, paths)
        ]

    def predict_batch(self, waveforms: list[np.ndarray], sample_rate: int) -> list[Prediction]:
        clips = []
        for w in waveforms:
            w = np.asarray(w, dtype=np.float32)
            if w.ndim == 2:
                w = w.mean(axis=1)
            if w.size == 0:
                raise AudiomnistError("waveform is empty")
            if bad_samples(w):  # judged before resampling spreads a NaN or 1e30 around
                w = np.full(1, np.nan, np.float32)
            elif sample_rate != self.sample_rate:
                w = resample(w, sample_rate, self.sample_rate, self.cfg.audio.resample_quality)
            clips.append(w)
        return self._answers(clips, [None] * len(clips))

    def predict(self, waveform: np.ndarray, sample_rate: int) -> Prediction:
        """One clip (mono, or (frames, channels)) at any sample rate."""
        return self.predict_batch([waveform], sample_rate)[0]

    def load_file(self, path: str | os.PathLike) -> np.ndarray:
        a = self.cfg.audio
        # NaN/inf samples are loaded, not refused: they get "no digit" (bad samples) like any other unusable clip.
        return load_audio(path, a.sample_rate, a.max_seconds, a.resample_quality, allow_nonfinite=True)

    def predict_file(self, path: str | os.PathLike) -> Prediction:
        return self._answers([self.load_file(path)], [os.fspath(path)])[0]

    def predict_files(
        self, paths: list[str | os.PathLike], batch_size: int = 64, progress: bool = False
    ) -> tuple[list[Prediction], list[AudioError]]:
        """Predictions for every readable file, and one AudioError per file that could not be read."""
        done: list[Prediction] = []
        errors: list[AudioError] = []
        bar = tqdm(total=len(paths), desc="predict", unit="file", disable=not progress) if tqdm else None
        for i in range(0, len(paths), batch_size):
            ok, clips = [], []
            for p in paths[i : i + batch_size]:
                try:
                    clips.append(self.load_file(p))
                    ok.append(os.fspath(p))
                except AudioError as e:
                    errors.append(e)
            if clips:
                done += self._answers(clips, ok)
            if bar is not None:
                bar.update(min(batch_size, len(paths) - i))
        if bar is not None:
            bar.close()
        return done, errors


def _audio_under(folder: Path, problems: list[tuple[str, str]], ignored: list[str]) -> list[Path]:
    """Files under `folder` that sources.audio_file_rule takes, sorted; refused ones to `problems`, others to `ignored`.

    Symlinked folders are followed, each real folder entered once (by device and inode), so links never loop.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(e: OSError) -> None:
        problems.append((str(e.filename), f"folder not readable: {(e.strerror or str(e)).lower()}"))

    for top, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        st = os.stat(top)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        # Hidden entries and __MACOSX are skipped unlisted, as data scan does (.DS_Store, ._x.wav resource forks).
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in IGNORED_DIRS)
        for name in files:
            if name.startswith("."):
                continue
            path = Path(top, name)
            verdict = audio_file_rule(path.relative_to(folder).as_posix())
            if verdict is None:
                found.append(path)
            elif verdict == NOT_AUDIO:
                ignored.append(str(path))
            else:
                problems.append((str(path), verdict))
    return sorted(found)


def find_audio(
    inputs: list[str], problems: list[tuple[str, str]] | None = None, ignored: list[str] | None = None
) -> list[Path]:
    """Files given directly plus the audio files found (sorted) under given folders, by the rule data scan uses.

    An input that cannot be read (missing, symlink loop, permission denied) or a file the rule refuses goes to
    `problems` as (path, reason), so one bad argument never loses the others; files that are not audio by name go
    to `ignored`. Without a `problems` list a bad input raises and refused files are warned about.
    """
    out: list[Path] = []
    found: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item)
        problem = path_problem(p)
        if problem is None and not p.is_dir():  # named explicitly: tried whatever its extension, never if not UTF-8
            verdict = audio_file_rule(p.name)
            problem = None if verdict in (None, NOT_AUDIO) else verdict
        if problem is not None:
            if problems is None:
                raise AudiomnistError(f"{_printable(str(p))}: {problem}")
            problems.append((str(p), problem))
        elif p.is_dir():
            out += _audio_under(p, found, [] if ignored is None else ignored)
        else:
            out.append(p)
    if problems is None:
        for path, reason in found:
            warnings.warn(f"{_printable(path)}: {reason}", stacklevel=2)
    else:
        problems += found
    return out


def label_from_name(path: str | os.PathLike) -> str | None:
    """The digit a file name announces ('7_theo_3.wav', 'seven.wav', 'zero-2.flac'), or None."""
    label = parse_label(PurePosixPath(Path(path).name), "folder")
    return None if label is None else str(label.digit)


def _printable(path: str) -> str:
    """A path whose name holds bytes that are not UTF-8 (surrogate escapes), shown with backslash escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _table(preds: list[Prediction], truth: list[str | None]) -> str:
    names = [_printable(p.path or "") for p in preds]
    width = max([len(n) for n in names] + [4])
    lines = [f"{'file':<{width}}  pred  prob    true"]
    for p, name, t in zip(preds, names, truth):
        mark = "" if t is None else (t if t == p.label else f"{t}  WRONG")
        if p.label is None:  # no digit: "-" in the prediction column and the reason where the probability goes
            lines.append(f"{name:<{width}}  {'-':>4}  {p.reason}  {mark}".rstrip())
            continue
        lines.append(f"{name:<{width}}  {p.label:>4}  {p.probability:.3f}  {mark}")
    return "\n".join(lines)


def _score(preds: list[Prediction], truth: list[str | None], classes: list[str]) -> str:
    # A labelled file that got no digit is a miss: it counts against accuracy, and in the confusion's `none` column
    # where the model has one (whatever the reason: a refusal of a real digit is what the column is there to show).
    none = classes.index(NONE_CLASS) if NONE_CLASS in classes else None
    pairs = [
        (classes.index(t), none if p.label is None else classes.index(p.label))
        for p, t in zip(preds, truth)
        if t in classes and (p.label is not None or none is not None)
    ]
    missed = sum(t in classes and p.label is None for p, t in zip(preds, truth))
    if not pairs and not missed:
        return ""
    y, yhat = np.array(pairs, dtype=int).reshape(-1, 2).T
    cm = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(cm, (y, yhat), 1)
    note = f" ({missed} gave no digit, counted as wrong)" if missed else ""
    n = sum(t in classes for t in truth)
    lines = [
        f"accuracy {float((y == yhat).sum()) / n:.4f} on {n} files labelled by their names{note}",
        "confusion (rows true, columns predicted):",
    ]
    lines.append("     " + " ".join(f"{c:>4}" for c in classes))
    lines += [f"{c:>4} " + " ".join(f"{v:>4}" for v in row) for c, row in zip(classes, cm)]
    return "\n".join(lines)


def _truncated(path: Path) -> str | None:
    """The truncation a file's header reveals (soundfile reads what is there and says nothing), or None."""
    import soundfile as sf

    try:
        return truncation(sf.info(os.fsencode(path)).extra_info)
    except Exception:  # unreadable: predict_files reports it with its reason
        return None


def cmd_predict(args: argparse.Namespace) -> int:
    clf = Classifier.load(args.model, backend=args.backend, **no_digit_options(args))
    problems: list[tuple[str, str]] = []
    ignored: list[str] = []
    paths = find_audio(args.inputs, problems, ignored)
    if ignored:  # listed, not silently dropped: a recording with an unexpected extension should be noticed
        more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        names = ", ".join(_printable(p) for p in ignored[:5]) + more
        print(f"ignored {len(ignored)} files that are not audio by name: {names}", file=sys.stderr)
    if not paths and problems:
        raise AudiomnistError("; ".join(f"{_printable(p)}: {r}" for p, r in problems))
    if not paths:
        raise AudiomnistError(f"no audio files (.wav, .flac, .ogg) in {', '.join(args.inputs)}")
    for p in paths:
        cut = _truncated(p)
        if cut:
            print(f"warning: {_printable(str(p))}: {cut}; predicting from the part that is there", file=sys.stderr)
    t0 = time.perf_counter()
    preds, errors = clf.predict_files(paths, progress=not args.no_progress and sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    truth = [label_from_name(p.path) for p in preds]
    if args.format == "json":
        digit = clf.cfg.target == "digit"
        rows = [
            {
                **p.to_dict(),
                "path": _printable(p.path) if p.path else p.path,
                "digit": p.label if digit else None,
                "true": t,
            }
            for p, t in zip(preds, truth)
        ]
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["path", "prediction", "probability", "true", *(f"p_{c}" for c in clf.classes), "reason"])
        for p, t in zip(preds, truth):
            answered = p.label is not None  # no digit: "-" and the reason; probabilities wherever the network ran
            probs = [f"{p.probabilities[c]:.6f}" if p.probabilities else "" for c in clf.classes]
            row = [p.label, f"{p.probability:.6f}"] if answered else ["-", "-"]
            w.writerow([_printable(p.path), *row, t or "", *probs, "" if answered else p.reason])
    else:
        print(_table(preds, truth))
    # With json/csv on stdout the score goes to stderr, so the output stays machine-readable.
    out = sys.stdout if args.format == "table" else sys.stderr
    score = _score(preds, truth, clf.classes)
    if score:
        print(score, file=out)
    print(f"{len(preds)} files in {seconds:.2f} s ({clf.backend})", file=out)
    for p, reason in problems:
        print(f"skipped: {_printable(p)}: {reason}", file=sys.stderr)
    for e in errors:
        print(f"skipped: {e}", file=sys.stderr)
    # A file named on the command line that could not be used fails the command (after the rest were processed);
    # unusable files found inside a given folder are only listed, as `data scan` does.
    named = {os.fspath(Path(a)) for a in args.inputs}
    failed = [p for p, _ in problems if p in named] + [e.path for e in errors if e.path in named]
    return 1 if failed or (errors and not preds) else 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_DIRS")
    p.add_argument(
        "--model", help="run folder, checkpoint, .onnx file or shipped model name (default: the shipped model)"
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="default: by the model (.onnx: onnx, checkpoint: torch); "
        "onnx with a checkpoint exports it once, with a shipped name takes its .onnx",
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    add_no_digit_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)


def add_no_digit_arguments(p: argparse.ArgumentParser) -> None:
    """--min-prob and --none-threshold, the Classifier's two ways to answer no digit itself."""
    p.add_argument(
        "--min-prob",
        type=float,
        default=DEFAULT_MIN_PROB,
        metavar="P",
        help=f"answer no digit ('low confidence') when the top calibrated probability is under P "
        f"(default {DEFAULT_MIN_PROB:g}); a model trained with --negative also answers 'not a digit' itself",
    )
    p.add_argument(
        "--none-threshold",
        type=float,
        default=DEFAULT_NONE_THRESHOLD,
        metavar="P",
        help="for a model with the 'none' class: answer 'not a digit' only when p(none) >= P, else the best digit "
        "(default: the model's own threshold where it stores one, as the shipped model does; else when none is "
        "the most likely class)",
    )


def no_digit_options(args: argparse.Namespace) -> dict:
    """Classifier.load's keyword arguments from add_no_digit_arguments's flags."""
    return {"min_prob": args.min_prob, "none_threshold": args.none_threshold}
