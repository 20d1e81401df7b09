"""Training data: the catalog of every data folder, its waveform cache, the label of each row, and the split.

Shared by training, cross-validation, evaluation and the demo, so they read data and split speakers the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .cache import WaveformCache
from .catalog import Catalog, combine, load_or_scan, sample_root, scan
from .errors import AudiomnistError
from .onnx_model import NONE_CLASS
from .paths import data_home, short_hash
from .runconfig import TrainConfig
from .splits import Split, balanced_gender_speakers, paper_split, random_split, speaker_split


@dataclass
class Data:
    """A catalog, its waveform cache, and the label of every row (-1: not usable for this target)."""

    catalog: Catalog
    cache: WaveformCache
    labels: np.ndarray
    classes: list[str]
    source: np.ndarray | None = None  # index of the --data folder each row comes from

    @property
    def speakers(self) -> np.ndarray:
        return self.catalog.table["speaker"].astype(str).to_numpy()

    @property
    def usable(self) -> np.ndarray:
        return np.flatnonzero(self.labels >= 0)


def default_data() -> tuple[str, str]:
    """AudioMNIST under AUDIOMNIST_HOME if downloaded, else the shipped synthetic sample (with a note saying so)."""
    downloaded = data_home() / "datasets" / "audiomnist"
    if downloaded.is_dir():
        return str(downloaded), f"using AudioMNIST at {downloaded}"
    root = sample_root()
    return str(root), (
        f"no dataset given and none downloaded: using the small synthetic espeak-ng sample at {root}.\n"
        "  For real results: `audiomnist data download audiomnist`, or pass --data PATH (AudioMNIST, FSDD or your "
        "own folder)."
    )


def with_default_data(cfg: TrainConfig) -> TrainConfig:
    """`cfg` as is when it names data; otherwise reading default_data(), with its note printed."""
    if cfg.data:
        return cfg
    root, note = default_data()
    print(note)
    return dataclasses.replace(cfg, data=(root,))


NONE = NONE_CLASS  # the class of --negative clips: not an English digit


def class_names(target: str, negatives: bool = False) -> list[str]:
    """The classes of a target; with negatives, digits get one more class, NONE."""
    if target == "digit":
        return [str(d) for d in range(10)] + ([NONE] if negatives else [])
    if target == "gender":
        return ["female", "male"]
    raise AudiomnistError(f"unknown --target {target!r}: choose digit or gender")


def _labels(cfg: TrainConfig, catalog: Catalog, classes: list[str]) -> np.ndarray:
    table = catalog.table
    if cfg.target == "digit":
        return table["digit"].to_numpy(dtype=np.int64).copy()
    gender = table["gender"].fillna("").astype(str).str.lower().to_numpy()
    labels = np.array([classes.index(g) if g in classes else -1 for g in gender], dtype=np.int64)
    # The paper's gender folds pick their own balanced 12 + 12 speakers; a random pick would break them.
    if (labels >= 0).any() and cfg.split != "paper":
        keep = balanced_gender_speakers(table["speaker"].to_numpy(), gender, seed=cfg.seed)
        labels[~keep] = -1
    return labels


def load_data(cfg: TrainConfig, progress: bool = True, save_catalog: bool = True) -> Data:
    """Scan every data root, build or load the waveform cache, and label the usable rows.

    save_catalog=False only reads (no catalog saved, nothing printed): for every torchrun worker but the first of a
    machine.
    """
    # Only --negative folders (evaluating on non-digits alone): no default data added.
    roots = tuple(cfg.data or (() if cfg.negatives else (default_data()[0],))) + tuple(cfg.negatives)
    layout = None if cfg.layout == "auto" else cfg.layout
    read = load_or_scan if save_catalog else scan
    catalogs = [read(Path(r), layout=layout, progress=progress) for r in roots]
    catalog = catalogs[0] if len(catalogs) == 1 else combine(catalogs)
    if len(catalog.table) == 0:
        raise AudiomnistError(f"no usable audio files found in {', '.join(map(str, roots))}")
    cache = WaveformCache.for_catalog(catalog, cfg.audio, progress=progress)
    if save_catalog:
        cache.report_errors()
    classes = class_names(cfg.target, bool(cfg.negatives))
    labels = _labels(cfg, catalog, classes)
    source = _sources(catalog, roots)
    if cfg.negatives:
        if cfg.target != "digit":
            raise AudiomnistError("--negative needs --target digit (the extra class means: not an English digit)")
        labels[source >= len(roots) - len(cfg.negatives)] = classes.index(NONE)
    labels[~cache.ok] = -1
    return Data(catalog, cache, labels, classes, source)


def _sources(catalog: Catalog, roots: tuple[str, ...] | list[str]) -> np.ndarray:
    """Which of `roots` each catalog row's file lies under (the first that holds it)."""
    paths = catalog.table["path"].astype(str)
    source = np.full(len(paths), -1, dtype=np.int64)
    for i, root in reversed(list(enumerate(roots))):
        source[paths.str.startswith(str(Path(root).resolve()) + "/").to_numpy()] = i
    return source


def row_weights(data: Data, rows: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """Each row's --data-weight: its folder's (weights given for the --data folders only: every --negative folder
    weighs 1)."""
    per_folder = np.ones(max(len(weights), int(data.source.max(initial=-1)) + 1))
    per_folder[: len(weights)] = weights
    return per_folder[data.source[rows]]


def weighted_rows(data: Data, rows: np.ndarray, weights: tuple[float, ...], generator) -> np.ndarray:
    """len(rows) rows drawn with replacement, each with probability proportional to its folder's weight."""
    p = torch.as_tensor(row_weights(data, rows, weights))
    return rows[torch.multinomial(p, len(rows), replacement=True, generator=generator).numpy()]


def load_data_everywhere(cfg: TrainConfig, progress: bool = True) -> Data:
    """load_data on every torchrun rank, in turns (distributed.in_turns): rank 0 alone prints, saves the catalog and
    builds the cache; the others open it (where it is not shared, the first process of each machine builds one)."""
    main = distributed.is_main()
    data = distributed.in_turns(lambda: load_data(cfg, progress=progress and main, save_catalog=main))
    if not distributed.all_same(short_hash(data.catalog.table["relpath"].tolist(), data.labels.tolist())):
        raise AudiomnistError("the processes see different data: give every machine the same --data folders and files")
    return data


def make_split(cfg: TrainConfig, data: Data) -> Split:
    """The configured split over usable rows, as global row indices."""
    rows = data.usable
    speakers = data.speakers[rows]
    if cfg.split == "speaker":
        strata = data.labels[rows] if cfg.target == "gender" else None
        if cfg.negatives:  # each folder loses the same share of its speakers: the digit speakers too get a test part
            strata = data.source[rows]
        s = speaker_split(speakers, cfg.val_frac, cfg.test_frac, cfg.seed, strata=strata)
    elif cfg.split == "random":
        s = random_split(len(rows), cfg.val_frac, cfg.test_frac, cfg.seed)
    elif cfg.split == "paper":
        s = paper_split(speakers, cfg.fold, cfg.target)
    else:
        raise AudiomnistError(f"unknown --split {cfg.split!r}: choose speaker, random or paper")
    return Split(rows[s.train], rows[s.val], rows[s.test], s.kind, s.leaky)
