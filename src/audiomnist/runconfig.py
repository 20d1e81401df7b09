"""The run configuration: every setting of a training run in one frozen dataclass, its presets, and how the
command line, a --config file and a preset combine into one (command line > --config > preset > defaults).

A run folder's config.json is `to_dict(TrainConfig)`: `audiomnist train --config RUN/config.json` reruns it.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from . import models
from .audio import AudioConfig
from .augment import AugmentConfig
from .config import add_arguments, from_dict, load_json, merged, option, overrides_from_args, to_dict
from .errors import AudiomnistError, ConfigError
from .features import FeatureConfig, SpecAugmentConfig

DEFAULT_MODEL = "res2d"
SPLITS = ("speaker", "random", "paper")


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...] = option(
        (),
        "dataset folder (repeatable; default: AudioMNIST in AUDIOMNIST_HOME, else the shipped sample)",
        metavar="PATH",
    )
    # Each clip of the i-th --data folder is drawn with probability proportional to the i-th weight, so a few real
    # voices are not drowned by thousands of synthetic ones; the epoch keeps its length.
    data_weights: tuple[float, ...] = option(
        (),
        "sampling weight of each --data folder's clips, in order (repeatable; default: every clip equally likely)",
        flag="--data-weight",
        metavar="W",
    )
    # Every usable clip under these folders is one more class, "none" (not an English digit), whatever its file name
    # says: other languages' digit words, synthetic English non-digit words, noise. Split by speaker like the rest.
    negatives: tuple[str, ...] = option(
        (), "folder of non-digit examples, labelled class 'none' (repeatable)", flag="--negative", metavar="PATH"
    )
    layout: str = option("auto", "force the dataset layout", choices=("auto", "audiomnist", "fsdd", "folder"))
    target: str = option("digit", "what to predict", choices=("digit", "gender"))
    model: str = option(DEFAULT_MODEL, "network name (see `audiomnist models`)")
    init: str = option(
        "",
        "start from the weights of this run folder, checkpoint or shipped model; layers whose shape differs "
        "(an output layer for other classes) start fresh",
        metavar="RUN_DIR",
    )
    model_args: dict = option(
        factory=dict, help="extra model constructor argument, e.g. width=2 (repeatable)", flag="--model-arg"
    )
    audio: AudioConfig = option(AudioConfig(sample_rate=8000), "how clips are read and fitted to the window")
    features: FeatureConfig = option(FeatureConfig(), "the network's input")
    specaug: SpecAugmentConfig = option(SpecAugmentConfig(), "SpecAugment masks, training only")
    augment: AugmentConfig = option(AugmentConfig(), "waveform augmentation, training only")
    # "fold" is set by cv: its folds come from speaker_folds, not from these fractions.
    split: str = option(
        "speaker",
        "speaker-disjoint, random (speaker-leaking, the original's) or paper (AudioMNIST's speaker folds)",
        choices=SPLITS,
    )
    fold: int = option(0, "fold of --split paper (0-4 digit, 0-3 gender)")
    val_frac: float = option(
        0.1, "share of speakers held out for validation (random split: of clips; default 0 there, as the original)"
    )
    test_frac: float = option(0.2, "share of speakers held out for the test")
    epochs: int = option(20, "training epochs")
    batch_size: int = option(64, "global batch size (split over torchrun processes)")
    optimizer: str = option("adamw", "optimizer", choices=("adamw", "adam"))
    lr: float = option(3e-3, "peak learning rate (OneCycle max_lr)")
    weight_decay: float = option(1e-2, "weight decay")
    schedule: str = option("onecycle", "learning-rate schedule", choices=("onecycle", "constant"))
    label_smoothing: float = option(0.05, "label smoothing of the cross-entropy")
    mixup: float = option(
        0.0, "mixup strength on the features, Beta(ALPHA, ALPHA), training only; 0 turns it off", metavar="ALPHA"
    )
    seed: int = option(0, "seed of the split, initialisation, order and augmentation")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, mps")
    amp: bool = option(True, "mixed precision (CUDA only)")
    preset: str = option(
        "", "the original project's recipes: v1 (1500 ms, zero pad), v2 (1000 ms, zero pad), v3 (1000 ms, noise pad)"
    )
    name: str = option("", "suffix of the run folder name")

    def __post_init__(self) -> None:
        if self.mixup < 0:
            raise ConfigError(f"mixup alpha must be >= 0 (0: off), got {self.mixup}")
        if self.augment.vtlp != (1.0, 1.0) and self.features.kind != "logmel":
            raise ConfigError("--augment.vtlp warps the log-mel frequency axis: it needs --features.kind logmel")
        if self.augment.reverse_none > 0 and not self.negatives:
            raise ConfigError("--augment.reverse-none trains a 'none' class: give its examples with --negative")
        folders = len(self.data) + len(self.negatives)
        if self.data_weights and (
            len(self.data_weights) not in (len(self.data), folders) or min(self.data_weights) <= 0
        ):
            raise ConfigError(
                f"give one positive --data-weight per --data folder ({len(self.data)}), or per --data "
                f"and --negative folder ({folders}), got {list(self.data_weights)}"
            )


def _original(duration_ms: int, pad_mode: str) -> dict:
    """The original project's recipe: 48 kHz, n_fft 1024, 64 mels, seed-cnn, Adam 1e-3 one-cycle, 10 epochs, batch 16.

    Its dB spectrogram had no top_db floor and was standardised by each batch's own mean and std; the closest
    batch-independent equivalent is one mean and std per clip ("utterance").
    """
    return dict(
        audio=to_dict(AudioConfig(sample_rate=48000, duration_ms=duration_ms, pad_mode=pad_mode)),
        features=to_dict(
            FeatureConfig(
                n_fft=1024,
                win_length=1024,
                hop_length=512,
                n_mels=64,
                f_min=0.0,
                f_max=None,
                normalize="utterance",
                top_db=None,
                log_floor=1e-10,
            )
        ),
        specaug=to_dict(SpecAugmentConfig(freq_masks=2, time_masks=2, max_freq_frac=0.1, max_time_frac=0.1)),
        augment=to_dict(AugmentConfig(shift_ms=0, gain_db=0.0, noise_prob=0.0)),
        model="seed-cnn",
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        epochs=10,
        batch_size=16,
        label_smoothing=0.0,
    )


PRESETS: dict[str, dict] = {
    "v1": _original(1500, "zeros"),
    "v2": _original(1000, "zeros"),
    "v3": _original(1000, "noise"),
}


def with_preset(cfg: TrainConfig, name: str) -> TrainConfig:
    """`cfg` with preset `name` applied (the preset's fields replace cfg's)."""
    return config_from_dict(merged(to_dict(cfg), {**preset_fields(name), "preset": name}))


def preset_fields(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"unknown --preset {name!r}: choose {', '.join(PRESETS)}")
    return PRESETS[name]


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["data"] = tuple(d.get("data", ()))
    d["negatives"] = tuple(d.get("negatives", ()))
    return from_dict(TrainConfig, d)


def config_from_file(path: str | Path, base: dict | None = None) -> TrainConfig:
    """A TrainConfig from a JSON file (merged over `base`, a config as a dict, when given); an unknown field or a
    bad value is an error naming the file."""
    d = load_json(path)
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: not a JSON object of TrainConfig fields")
    try:
        return config_from_dict(merged(base, d, ("model_args",)) if base is not None else d)
    except AudiomnistError as e:
        raise ConfigError(f"{path}: {e}") from None


def add_config_arguments(p: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """Every TrainConfig field as a flag (defaults and help from the dataclass), plus --config."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="JSON file of TrainConfig fields (e.g. a run's config.json); flags given on the command line override it",
    )
    add_arguments(p, TrainConfig(), exclude)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < preset < the model's own recommendations < --config file < flags given on the command line."""
    given = overrides_from_args(args, TrainConfig)
    from_file = load_json(args.config) if getattr(args, "config", None) else {}
    if not isinstance(from_file, dict):
        raise ConfigError(f"{args.config}: not a JSON object of TrainConfig fields")
    preset = given.get("preset", from_file.get("preset", ""))
    base = to_dict(with_preset(TrainConfig(), preset) if preset else TrainConfig())
    model = given.get("model", from_file.get("model", base["model"]))
    if model != base["model"] and not preset:
        # A model's own recommendations (e.g. audionet's 8 kHz raw waveform) apply unless a preset fixed them.
        rec = getattr(models.get(model), "recommended", {}) or {}
        base = merged(base, {"model": model, "model_args": {}, **rec}, ("model_args",))
    cfg = config_from_file(args.config, base) if from_file else config_from_dict(base)
    d = to_dict(cfg)
    if "model_args" in given:
        given["model_args"] = {**d["model_args"], **given["model_args"]}
    for folders in ("data", "negatives"):
        if folders in given:
            given[folders] = [str(Path(p).resolve()) for p in given[folders]]
    if given.get("init") and Path(given["init"]).exists():  # a path, not a shipped model's name
        given["init"] = str(Path(given["init"]).resolve())
    if given.get("split", d["split"]) == "random" and "val_frac" not in given and "val_frac" not in from_file:
        given["val_frac"] = 0.0  # the original's 80/20 train/test, no validation set
    return config_from_dict(merged(d, given, ("model_args",)))


def with_data(cfg: TrainConfig, paths: list[str] | tuple[str, ...]) -> TrainConfig:
    """`cfg` reading the given dataset folders (resolved, so a run folder's config works from anywhere). The sampling
    weights of the folders it had go with them (they would no longer match)."""
    return dataclasses.replace(cfg, data=tuple(str(Path(p).resolve()) for p in paths), data_weights=())


def build_model(cfg: TrainConfig, num_classes: int):
    """The network `cfg` names, with its arguments, for `num_classes` outputs."""
    if getattr(models.get(cfg.model), "sequence", False):
        raise ConfigError(f"{cfg.model} reads digit strings: train it with `audiomnist train-strings`")
    return models.create(cfg.model, num_classes, **cfg.model_args)
