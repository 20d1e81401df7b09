"""Digit-string models in torch: their run config, building and loading one, running it on waveforms of any length,
and scoring it on strings of held-out speakers (`audiomnist evaluate` on a string run lands here).

A string run's checkpoint is a digit run's (atomic, weights only, loaded with weights_only=True) with
"task": "strings", classes ctc.STRING_CLASSES, and a StringTrainConfig as its config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import models
from .audio import AudioConfig
from .checkpoint import load_checkpoint
from .config import from_dict, option, to_dict
from .ctc import STRING_CLASSES, decode, string_metrics, timing
from .errors import AudiomnistError, ConfigError
from .features import FeatureConfig, SpecAugmentConfig, build_frontend
from .paths import atomic_write_text
from .strings import (
    TEST_ASSEMBLY,
    AssemblyConfig,
    Clips,
    StringMaker,
    assemble,
    held_out_strings,
    list_negatives,
    load_clips,
)

TASK = "strings"
EMBEDDING_EDGE_S = 0.4  # about half a speech_embedding window (0.775 s): a vector centred on the clip's first sample


@dataclass(frozen=True)
class StringTrainConfig:
    data: tuple[str, ...] = option(
        (), "folder of clips named {digits}_{speaker}_{take}.wav (any audio format): isolated digits and/or whole "
        "strings (repeatable)", metavar="PATH")  # fmt: skip
    data_weights: tuple[float, ...] = option(
        (), "how often each --data folder is drawn from, in order (repeatable; default: equally)",
        flag="--data-weight", metavar="W")  # fmt: skip
    # Speakers named here never reach training or validation; the final test is strings of theirs.
    test_speakers: tuple[str, ...] = option((), "held-out test speaker (repeatable)", flag="--test-speaker")
    # Folders with fewer speakers give none to validation, so a small real corpus keeps its voices for training.
    val_frac: float = option(0.1, "share of each folder's speakers (folders with 10 or more) kept for validation")
    whole_prob: float = option(0.5, "chance an item is a recorded whole string, where its folder has them")
    # Without them the model has never heard a word that is not a digit, and hears some digit in almost any word.
    negatives: tuple[str, ...] = option(
        (), "folder of non-digit clips (words, other languages, noise; any names) said among the digits (repeatable)",
        flag="--negative", metavar="PATH")  # fmt: skip
    negative_prob: float = option(0.3, "with --negative: share of assembled strings with 1-3 non-digit clips in them")
    # Trained as blank, a heard word and a gap between digits are one output; a label of their own lets decoding
    # weigh the word against the digits (experiments/strings/README.md "A word class").
    word_class: bool = option(False, "with --negative: non-digit clips get a CTC label of their own (not blank)")
    word_weight: float = option(
        1.0, "word-class models: share of the word label's probability counted as blank when decoding (0-1; "
        "the rest is dropped, so words fall back to what else the frame sounds like)")  # fmt: skip
    model: str = option("ctc-tcn", "network name (see `audiomnist models`; a sequence model)")
    model_args: dict = option(factory=dict, help="extra model constructor argument, e.g. channels=128 (repeatable)",
                              flag="--model-arg")  # fmt: skip
    audio: AudioConfig = option(AudioConfig(sample_rate=8000), "the model's sample rate (clips are resampled to it)")
    features: FeatureConfig = option(FeatureConfig(), "the network's input")
    # Time masks would delete whole digits of a string; only frequency masks are safe for CTC labels.
    specaug: SpecAugmentConfig = option(SpecAugmentConfig(time_masks=0), "SpecAugment masks, log-mel training only")
    # A per-string warp of the mel axis: one speaker's vocal tract made a little longer or shorter (1 1: off).
    vtlp: tuple[float, float] = option((1.0, 1.0), "vocal-tract-length warp LOW HIGH of the mel axis, per string")
    assembly: AssemblyConfig = option(AssemblyConfig(), "how strings are assembled from isolated clips")
    epochs: int = option(20, "training epochs")
    steps: int = option(300, "batches per epoch (strings are made afresh for every batch)")
    # The frozen encoder costs far more than the head, so a speech_embedding model trains on a fixed pool of strings
    # encoded once (drawn as every batch is), not on fresh ones (experiments/embedding/README.md).
    pool: int = option(20000, "speech_embedding models: strings drawn and encoded once, then trained on every epoch")
    batch_size: int = option(32, "strings per batch")
    lr: float = option(3e-3, "peak learning rate (OneCycle)")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    val_strings: int = option(300, "validation strings (fixed, from the validation speakers)")
    test_strings: int = option(200, "test strings of 10 digits per held-out speaker")
    seed: int = option(0, "seed of the split, initialisation and the strings")
    threads: int = option(0, "CPU threads for torch (0: torch's default)")
    name: str = option("", "suffix of the run folder name")
    # Fine-tuning: the weights of an earlier string run of the same network, then this run's own schedule.
    init: str = option("", "start from this string run's (or checkpoint's) weights", metavar="RUN_DIR")

    def __post_init__(self) -> None:
        if not 0 < self.vtlp[0] <= self.vtlp[1]:
            raise ConfigError(f"vtlp must be a range 0 < low <= high, got {self.vtlp}")
        if self.data_weights and (len(self.data_weights) != len(self.data) or min(self.data_weights) <= 0):
            raise ConfigError(f"give one positive --data-weight per --data folder ({len(self.data)})")
        if not 0 <= self.negative_prob <= 1:
            raise ConfigError(f"negative_prob must be between 0 and 1, got {self.negative_prob}")
        if not 0 <= self.word_weight <= 1:
            raise ConfigError(f"word_weight must be between 0 and 1, got {self.word_weight}")
        if self.word_class and not self.negatives:
            raise ConfigError("--word-class needs --negative clips to learn the word label from")
        if self.features.kind not in ("logmel", "speech_embedding"):
            raise ConfigError("string models read log-mel features or speech_embedding vectors")
        if self.features.kind == "speech_embedding" and (self.vtlp != (1.0, 1.0) or self.pool < self.batch_size):
            raise ConfigError("speech_embedding string models: no --vtlp (it warps mel bands), --pool >= --batch-size")


def config_from_dict(d: dict) -> StringTrainConfig:
    d = dict(d)
    for key in ("data", "test_speakers", "data_weights", "negatives"):
        d[key] = tuple(d.get(key, ()))
    if "vtlp" in d:  # runs from before VTLP have none
        d["vtlp"] = tuple(d["vtlp"])
    return from_dict(StringTrainConfig, d)


def build(cfg: StringTrainConfig) -> torch.nn.Module:
    net = models.create(cfg.model, len(STRING_CLASSES) + cfg.word_class, **cfg.model_args)
    if not getattr(net, "sequence", False):
        raise AudiomnistError(f"model {cfg.model!r} gives one answer per clip; a string model needs a sequence model")
    wants = "speech_embedding" if net.input_kind == "embedding" else net.input_kind
    if wants != cfg.features.kind:
        raise ConfigError(f"model {cfg.model!r} reads {wants} features: add --features.kind {wants}")
    return net


def edge_samples(sample_rate: int) -> int:
    """Samples of silence EdgePad puts on each side."""
    return round(EMBEDDING_EDGE_S * sample_rate)


class EdgePad(torch.nn.Module):
    """EMBEDDING_EDGE_S of digital silence either side of the waveform: each speech_embedding vector hears 775 ms,
    so a word at the very start or end of a clip only sits inside some vector's window with room around it."""

    def __init__(self, sample_rate: int):
        super().__init__()
        self.samples = edge_samples(sample_rate)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(wave, (self.samples, self.samples))


def string_frontend(cfg: StringTrainConfig, exportable: bool = False) -> torch.nn.Module:
    """Waveform (B, samples) -> the network's input: log-mel (B, 1, mels, frames) or vectors (B, vectors, 96)."""
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate, exportable=exportable)
    if cfg.features.kind == "speech_embedding":
        return torch.nn.Sequential(EdgePad(cfg.audio.sample_rate), frontend)
    return frontend


def is_string_checkpoint(state: dict) -> bool:
    return state.get("task") == TASK


def load(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, StringTrainConfig]:
    """(network in eval mode, config) of a string run folder or checkpoint."""
    path = Path(path)
    path = path / "best.pt" if path.is_dir() else path
    state = load_checkpoint(path, map_location=device)
    if not is_string_checkpoint(state):
        raise AudiomnistError(f"{path}: a single-digit model, not a digit-string model")
    try:
        cfg = config_from_dict(state["config"])
        net = build(cfg)
        net.load_state_dict(state["model"])
    except (KeyError, ValueError, TypeError, RuntimeError, AudiomnistError) as e:
        raise AudiomnistError(f"{path}: checkpoint does not match this version of audiomnist ({e})") from None
    return net.to(device).eval(), cfg


def string_probabilities(logits: torch.Tensor, cfg: StringTrainConfig) -> torch.Tensor:
    """(..., classes) network outputs -> (..., 11) probabilities over STRING_CLASSES: a word-class model's word
    probability, times cfg.word_weight, goes to blank (no digit there), and the rest is renormalised."""
    p = torch.softmax(logits, dim=-1)
    if not cfg.word_class:
        return p
    q = torch.cat([p[..., :1] + cfg.word_weight * p[..., -1:], p[..., 1:-1]], dim=-1)
    return q / q.sum(dim=-1, keepdim=True)


class StringNet(torch.nn.Module):
    """(1, samples) waveform -> (frames, 11) probabilities: the front-end and the network, for one utterance
    (features are normalised over the utterance, so utterances are never padded together)."""

    def __init__(self, net: torch.nn.Module, cfg: StringTrainConfig, exportable: bool = False):
        super().__init__()
        self.min_gap = timing(to_dict(cfg)).min_gap  # decoding's, for this model's frame step
        self.cfg = cfg
        self.net = net.eval()
        self.frontend = string_frontend(cfg, exportable=exportable).eval()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return string_probabilities(self.net(self.frontend(wave)), self.cfg)[0]


@torch.inference_mode()
def probabilities(pipeline: StringNet, waves: list[np.ndarray]) -> list[np.ndarray]:
    return [pipeline(torch.from_numpy(np.asarray(w, np.float32))[None]).numpy() for w in waves]


def score(pipeline: StringNet, items: list[tuple[np.ndarray, str]], beam: int = 1) -> tuple[dict, list[str]]:
    """string_metrics of the pipeline's decodings of (waveform, digits) items, and the decodings."""
    probs = probabilities(pipeline, [w for w, _ in items])
    return score_probabilities(probs, [d for _, d in items], pipeline.min_gap, beam)


def score_probabilities(
    probs: list[np.ndarray], refs: list[str], min_gap: int, beam: int = 1
) -> tuple[dict, list[str]]:
    """string_metrics of the decodings of (frames, 11) probabilities against the digits said, and the decodings."""
    hyps = ["".join(h.digit for h in decode(p, beam, min_gap=min_gap)) for p in probs]
    return string_metrics(refs, hyps), hyps


def held_out_report(pipeline: StringNet, clips: Clips, cfg: StringTrainConfig, speakers: list[str]) -> dict:
    """Held-out speakers: 10-digit strings said without pauses, every length 1-12, and their isolated clips."""
    sr = cfg.audio.sample_rate
    ten = held_out_strings(clips, sr, speakers, cfg.test_strings, 10, cfg.seed)
    out: dict = {"speakers": speakers, "assembly": "strings.TEST_ASSEMBLY"}
    out["ten_digits"], _ = score(pipeline, ten)
    out["ten_digits_beam8"], _ = score(pipeline, ten, beam=8)
    by_len = [x for n in range(1, 13) for x in held_out_strings(clips, sr, speakers, 10, n, cfg.seed + 1)]
    out["lengths_1_12"], _ = score(pipeline, by_len)
    # Each isolated clip as a one-digit string with the test's silence and background around it, as a user says one.
    rng = np.random.default_rng(cfg.seed)
    single = [(assemble([a], sr, TEST_ASSEMBLY, rng)[0], t)
              for a, t, s in zip(clips.audio, clips.text, clips.speaker) if s in speakers and len(t) == 1]  # fmt: skip
    if single:
        m, _ = score(pipeline, single)
        out["isolated_clips"] = {"clips": len(single), "accuracy": m["exact_match"]}
    n = cfg.test_strings  # held_out_strings lists each speaker's strings together, in order
    out["per_speaker"] = {s: score(pipeline, ten[k * n : (k + 1) * n])[0] for k, s in enumerate(speakers)}
    return out


def non_digit_report(
    pipeline: StringNet, clips: Clips, others: Clips, cfg: StringTrainConfig, speakers: list[str]
) -> dict:
    """Non-digit clips (`others`, e.g. words of voices never trained on): each said alone with the test's silence
    and background (digits heard in them: none is right), and 1-2 of them said among the digits of ten-digit
    strings, cfg.test_strings per held-out speaker (scored on the digits)."""
    sr, n = cfg.audio.sample_rate, cfg.test_strings
    rng = np.random.default_rng([cfg.seed, 77])
    alone = [(assemble([a], sr, TEST_ASSEMBLY, rng)[0], "") for a in others.audio]
    heard = [len(h) for h in score(pipeline, alone)[1]]
    maker = StringMaker(clips.select(np.array([s in speakers for s in clips.speaker])), sr, TEST_ASSEMBLY)
    mixed = []
    for s in speakers:
        for _ in range(n):
            picks = rng.integers(len(others), size=int(rng.integers(1, 3)))
            mixed.append(maker.make(rng, s, 10, others=[others.audio[i] for i in picks]))
    return {
        "clips": len(alone), "digits_per_clip": float(np.mean(heard)), "no_digit": float(np.mean(np.array(heard) == 0)),
        "ten_digits_with_non_digits": score(pipeline, mixed)[0],
    }  # fmt: skip


def evaluate_run(
    run_dir: Path, speakers: list[str] | None = None, data: list[str] | None = None, negatives: list[str] | None = None
) -> dict:
    """Score a string run's best.pt on its held-out speakers (or others given), and with `negatives` on those
    folders' non-digit clips (non_digit_report); writes report/strings.json."""
    net, cfg = load(run_dir)
    speakers = speakers or list(cfg.test_speakers)
    if not speakers:
        raise AudiomnistError(f"{run_dir}: no held-out speakers in its config; name some with --speaker")
    clips = load_clips(data or cfg.data, cfg.audio.sample_rate)
    missing = sorted(set(speakers) - set(clips.speaker))
    if missing:
        raise AudiomnistError(f"speakers not in the data: {', '.join(missing)}")
    pipeline = StringNet(net, cfg)
    report = held_out_report(pipeline, clips, cfg, speakers)
    if negatives:
        others = load_clips(negatives, cfg.audio.sample_rate, lister=list_negatives)
        report["non_digits"] = non_digit_report(pipeline, clips, others, cfg, speakers)
    (run_dir / "report").mkdir(exist_ok=True)
    atomic_write_text(run_dir / "report" / "strings.json", json.dumps(report, indent=2) + "\n")
    return report


def summary_line(report: dict) -> str:
    ten = report["ten_digits"]
    line = (f"10-digit strings of {', '.join(report['speakers'])}: digit error rate {ten['digit_error_rate']:.4f}, "
            f"exact match {ten['exact_match']:.4f} ({ten['strings']} strings)")  # fmt: skip
    if "isolated_clips" in report:
        line += f"; isolated clips {report['isolated_clips']['accuracy']:.4f}"
    if "non_digits" in report:
        nd = report["non_digits"]
        line += (f"; {nd['clips']} non-digit clips: {nd['digits_per_clip']:.2f} digits each, none in "
                 f"{nd['no_digit']:.3f}; among ten digits: digit error rate "
                 f"{nd['ten_digits_with_non_digits']['digit_error_rate']:.4f}")  # fmt: skip
    return line
