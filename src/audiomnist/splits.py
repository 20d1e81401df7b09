"""Train/validation/test splits. Speaker-disjoint by default: a model is judged on voices it never heard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from .errors import AudiomnistError

# The AudioMNIST paper's speaker folds (Becker et al. 2018, repository file audiomnist/train/splits.py).
# Digit task: fold k tests group k, validates on group k-1 (mod 5) and trains on the other three.
PAPER_DIGIT_GROUPS = (
    (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51),
    (28, 56, 7, 19, 35, 1, 6, 16, 23, 34, 46, 53),
    (36, 57, 9, 24, 37, 2, 8, 17, 29, 39, 48, 54),
    (43, 58, 14, 25, 38, 3, 10, 20, 30, 40, 49, 55),
    (12, 47, 59, 15, 27, 41, 4, 11, 21, 31, 44, 50),
)
# Gender task: 12 female and 12 male speakers in four gender-balanced groups of six.
PAPER_GENDER_GROUPS = (
    (58, 59, 60, 7, 23, 38),
    (36, 47, 56, 2, 44, 50),
    (26, 12, 57, 25, 37, 45),
    (43, 28, 52, 48, 53, 41),
)


@dataclass(frozen=True)
class Split:
    """Row indices of each part; `leaky` marks splits whose test speakers were also heard in training."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str
    leaky: bool = False

    def describe(self, speakers: np.ndarray) -> str:
        parts = []
        for name in ("train", "val", "test"):
            idx = getattr(self, name)
            parts.append(f"{name} {len(idx)} clips/{len(np.unique(speakers[idx]))} speakers")
        text = f"{self.kind} split: " + ", ".join(parts)
        if self.leaky:
            text += "  [SPEAKER-LEAKING: test speakers also appear in training; accuracy is flattered]"
        return text


def _as_speaker_array(speakers) -> np.ndarray:
    return np.asarray([str(s) for s in speakers], dtype=object)


def speaker_split(speakers, val_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0, strata=None) -> Split:
    """Assign whole speakers to train/val/test (at least one each when there are 3+ speakers).

    `strata` (one label per row, e.g. gender) keeps those groups balanced across the parts.
    """
    speakers = _as_speaker_array(speakers)
    unique = np.unique(speakers)
    if len(unique) < 2:
        raise AudiomnistError(
            f"a speaker-disjoint split needs at least 2 speakers, found {len(unique)}; "
            "use --split random (speaker-leaking) for single-speaker data"
        )
    rng = np.random.default_rng(seed)
    if strata is None:
        groups = [unique]
    else:
        strata = np.asarray(strata, dtype=object)
        spk_stratum = {s: strata[speakers == s][0] for s in unique}
        groups = [
            np.array([s for s in unique if spk_stratum[s] == v]) for v in sorted(set(spk_stratum.values()), key=str)
        ]
    test_spk, val_spk = [], []
    for group in groups:
        group = rng.permutation(group)
        n = len(group)
        n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
        n_val = max(1, round(n * val_frac)) if val_frac > 0 and n - n_test >= 2 else 0
        if n - n_test - n_val < 1:
            n_test = min(n_test, n - 1)
            n_val = 0
        test_spk += list(group[:n_test])
        val_spk += list(group[n_test : n_test + n_val])
    test_mask = np.isin(speakers, test_spk)
    val_mask = np.isin(speakers, val_spk)
    train_mask = ~(test_mask | val_mask)
    return Split(np.flatnonzero(train_mask), np.flatnonzero(val_mask), np.flatnonzero(test_mask), "speaker")


def random_split(n: int, val_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0) -> Split:
    """The original project's random clip split. Speakers leak into the test set; for comparison only."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_frac), round(n * val_frac)
    return Split(
        np.sort(order[n_test + n_val :]),
        np.sort(order[n_test : n_test + n_val]),
        np.sort(order[:n_test]),
        "random",
        leaky=True,
    )


def paper_split(speakers, fold: int, target: str = "digit") -> Split:
    """The AudioMNIST paper's fold `fold` (digit: 0-4, gender: 0-3); speakers are AudioMNIST ids 1-60."""
    groups = PAPER_DIGIT_GROUPS if target == "digit" else PAPER_GENDER_GROUPS
    if not 0 <= fold < len(groups):
        raise AudiomnistError(f"--fold must be in 0..{len(groups) - 1} for the paper's {target} splits, got {fold}")
    try:
        ids = np.array([int(s) for s in _as_speaker_array(speakers)])
    except ValueError:
        raise AudiomnistError(
            "--split paper needs AudioMNIST speaker ids (01-60); this data has other speaker names"
        ) from None
    test = set(groups[fold])
    val = set(groups[(fold - 1) % len(groups)])
    train = set().union(*groups) - test - val
    parts = [np.flatnonzero(np.isin(ids, list(s))) for s in (train, val, test)]
    if any(len(p) == 0 for p in parts):
        raise AudiomnistError(f"--split paper fold {fold}: some parts are empty; is this the full AudioMNIST set?")
    return Split(*parts, kind=f"paper fold {fold}")


def speaker_folds(speakers, folds: int | str) -> list[np.ndarray]:
    """Test-row indices of each cross-validation fold, grouped by speaker (`folds="loso"`: one speaker per fold)."""
    speakers = _as_speaker_array(speakers)
    n_spk = len(np.unique(speakers))
    dummy = np.zeros(len(speakers))
    if folds == "loso":
        splitter = LeaveOneGroupOut()
    else:
        k = int(folds)
        if not 2 <= k <= n_spk:
            raise AudiomnistError(f"--folds {k}: need 2..{n_spk} folds for {n_spk} speakers (or 'loso')")
        splitter = GroupKFold(n_splits=k)
    return [test for _, test in splitter.split(dummy, groups=speakers)]


def balanced_gender_speakers(speakers, genders, seed: int = 0) -> np.ndarray:
    """Row mask keeping equally many male and female speakers (as the paper did for the gender task)."""
    speakers = _as_speaker_array(speakers)
    genders = np.asarray([str(g).lower() for g in genders], dtype=object)
    by_gender: dict[str, list[str]] = {}
    for s in np.unique(speakers):
        g = genders[speakers == s][0]
        if g in ("male", "female"):
            by_gender.setdefault(g, []).append(s)
    if len(by_gender) < 2:
        raise AudiomnistError("--target gender needs speakers of both genders in the metadata")
    n = min(len(v) for v in by_gender.values())
    rng = np.random.default_rng(seed)
    keep = [s for v in by_gender.values() for s in rng.choice(sorted(v), n, replace=False)]
    return np.isin(speakers, keep)
