"""Checkpoint loading: a file that would run code is refused in our words, never with advice to disable the check."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from audiomnist import cli
from audiomnist.checkpoint import load_checkpoint, save_checkpoint
from audiomnist.config import to_dict
from audiomnist.errors import AudiomnistError
from audiomnist.train import TrainConfig


class Payload:
    """Unpickling this creates a folder: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def assert_plain_refusal(message: str, path) -> None:
    assert str(path) in message and "refused to load" in message and "not a safe checkpoint" in message
    assert "\n" not in message and "\x1b" not in message, repr(message)
    assert "weights_only" not in message and "False" not in message, message  # never suggest turning the check off


@pytest.mark.parametrize("kind", ["torch.save", "raw pickle"])
def test_a_checkpoint_that_runs_code_is_refused_in_one_plain_line(tmp_path, kind):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    state = {"model": {"w": torch.zeros(2)}, "config": Payload(marker)}
    if kind == "torch.save":
        torch.save(state, evil)
    else:
        evil.write_bytes(pickle.dumps(state, protocol=4))
    with pytest.raises(AudiomnistError) as e:
        load_checkpoint(evil)
    assert_plain_refusal(str(e.value), evil)
    assert not marker.exists(), "the payload ran"


def test_garbage_is_not_a_readable_checkpoint(tmp_path):
    for i, data in enumerate([b"hello", b"not a checkpoint", b"\x80\x04K\x01."]):
        bad = tmp_path / f"bad{i}.pt"
        bad.write_bytes(data)
        with pytest.raises(AudiomnistError, match=f"bad{i}.pt: (not a readable|refused to load|not an audiomnist)"):
            load_checkpoint(bad)
    good = tmp_path / "good.pt"
    save_checkpoint({"model": {"w": torch.ones(1)}}, good)
    assert load_checkpoint(good)["model"]["w"].item() == 1.0


def test_resume_refuses_an_unsafe_last_pt_before_reading_any_data(tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    # The data folder does not exist: an error about it would mean the data was looked at before last.pt.
    cfg = to_dict(TrainConfig(data=(str(tmp_path / "no-such-data"),)))
    (run / "config.json").write_text(json.dumps(cfg))
    torch.save({"model": {}, "rng": Payload(marker)}, run / "last.pt")
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert_plain_refusal(err.strip(), run / "last.pt")
    assert not marker.exists()
