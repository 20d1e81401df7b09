import numpy as np
import pytest

from audiomnist.errors import AudiomnistError
from audiomnist.splits import (
    PAPER_DIGIT_GROUPS,
    PAPER_GENDER_GROUPS,
    balanced_gender_speakers,
    paper_split,
    random_split,
    speaker_folds,
    speaker_split,
)


def rows(n_speakers=10, per=20):
    return np.repeat([f"{i:02d}" for i in range(1, n_speakers + 1)], per)


def test_speaker_split_is_disjoint_and_complete():
    spk = rows(10)
    s = speaker_split(spk, val_frac=0.1, test_frac=0.2, seed=3)
    parts = [set(spk[s.train]), set(spk[s.val]), set(spk[s.test])]
    assert all(parts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(s.train) + len(s.val) + len(s.test) == len(spk)
    assert len(parts[2]) == 2 and len(parts[1]) == 1
    assert not s.leaky


def test_speaker_split_small_sets_keep_one_speaker_per_part():
    spk = rows(3)
    s = speaker_split(spk, seed=0)
    assert [len(set(spk[p])) for p in (s.train, s.val, s.test)] == [1, 1, 1]
    with pytest.raises(AudiomnistError, match="at least 2 speakers"):
        speaker_split(rows(1))


def test_speaker_split_depends_on_seed_only():
    spk = rows(12)
    a, b, c = (speaker_split(spk, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_speaker_split_strata_balances_genders():
    spk = rows(10)
    gender = np.where(np.isin(spk, ["01", "02", "03", "04", "05"]), "female", "male")
    s = speaker_split(spk, val_frac=0.2, test_frac=0.2, strata=gender)
    assert set(gender[s.test]) == {"female", "male"}


def test_random_split_is_marked_leaky():
    s = random_split(100, seed=0)
    assert s.leaky and "SPEAKER-LEAKING" in s.describe(rows(5))
    assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(100))


def test_paper_digit_folds_match_published_splits():
    assert sorted(sum(PAPER_DIGIT_GROUPS, ())) == list(range(1, 61))
    spk = np.repeat([f"{i:02d}" for i in range(1, 61)], 5)
    s = paper_split(spk, 0)
    assert set(spk[s.test].astype(int)) == {26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51}
    assert set(spk[s.val].astype(int)) == set(PAPER_DIGIT_GROUPS[4])
    assert len(set(spk[s.train])) == 36
    for k in range(5):
        f = paper_split(spk, k)
        assert not set(spk[f.test]) & set(spk[f.train])
    with pytest.raises(AudiomnistError, match="fold"):
        paper_split(spk, 5)
    with pytest.raises(AudiomnistError, match="AudioMNIST speaker ids"):
        paper_split(np.array(["george", "theo"]), 0)


def test_paper_gender_folds_have_six_speakers():
    spk = np.repeat([f"{i:02d}" for i in range(1, 61)], 2)
    for k in range(4):
        s = paper_split(spk, k, target="gender")
        assert len(set(spk[s.test])) == 6 and len(set(spk[s.train])) == 12
    assert len(set(sum(PAPER_GENDER_GROUPS, ()))) == 24


def test_speaker_folds_loso_and_k():
    spk = rows(6, per=4)
    loso = speaker_folds(spk, "loso")
    assert len(loso) == 6 and all(len(set(spk[t])) == 1 for t in loso)
    k3 = speaker_folds(spk, 3)
    assert sorted(np.concatenate(k3).tolist()) == list(range(len(spk)))
    assert all(len(set(spk[t])) == 2 for t in k3)
    with pytest.raises(AudiomnistError):
        speaker_folds(spk, 7)


def test_balanced_gender_speakers():
    spk = rows(8)
    gender = np.where(np.isin(spk, ["01", "02"]), "female", "male")
    keep = balanced_gender_speakers(spk, gender)
    kept = set(spk[keep])
    assert {"01", "02"} <= kept and len(kept) == 4
