"""`audiomnist train-strings`: a run folder from tone 'speakers', resume, evaluate, and the held-out report."""

import json

import numpy as np
import pytest

from audiomnist import cli, train_strings
from audiomnist.checkpoint import load_checkpoint
from audiomnist.string_model import config_from_dict, evaluate_run, load

from conftest import write_tone_set

TINY = ["--steps", "40", "--batch-size", "8", "--val-strings", "20", "--test-strings", "10",
        "--assembly.max-digits", "4", "--model-arg", "channels=32", "--model-arg", "blocks=3",
        "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return write_tone_set(tmp_path_factory.mktemp("tones"), speakers=4, reps=3)


@pytest.fixture(scope="module")
def run(tones, tmp_path_factory):
    """A 2-epoch run stopped (Ctrl-C) in its second epoch, then resumed to the end."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "04", "--epochs", "2", "--runs", str(runs), *TINY]
    real, calls = train_strings.run_epoch, []

    def stop_in_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    train_strings.run_epoch = stop_in_second
    try:
        assert cli.main(argv) == 130
    finally:
        train_strings.run_epoch = real
    (folder,) = runs.iterdir()
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1 and not (folder / "metrics.json").exists()
    assert cli.main(["train-strings", "--resume", str(folder), "--no-progress"]) == 0
    return folder


def test_run_folder_holds_config_checkpoints_metrics_and_report(run):
    assert {"config.json", "best.pt", "last.pt", "metrics.json", "tb", "report"} <= {p.name for p in run.iterdir()}
    cfg = config_from_dict(json.loads((run / "config.json").read_text()))
    assert cfg.test_speakers == ("04",) and cfg.model == "ctc-tcn"
    state = load_checkpoint(run / "best.pt")
    assert state["task"] == "strings" and state["classes"][0] == "<blank>" and len(state["classes"]) == 11
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"]["test_speakers"] == ["04"] and "04" not in metrics["split"]["val_speakers"]
    test = metrics["test"]
    assert test["ten_digits"]["strings"] == 10 and 0 <= test["ten_digits"]["digit_error_rate"]
    assert sorted(map(int, test["lengths_1_12"]["by_length"])) == list(range(1, 13))
    assert test["isolated_clips"]["clips"] == 30  # speaker 04's own clips, each a string of one digit


def test_resume_continues_after_the_last_epoch(run):
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


def test_evaluate_writes_the_string_report(run, tones, capsys):
    report = evaluate_run(run)
    assert report["speakers"] == ["04"] and (run / "report" / "strings.json").is_file()
    assert cli.main(["evaluate", str(run)]) == 0
    assert "10-digit strings of 04" in capsys.readouterr().out
    net, _ = load(run)
    assert net.training is False


def test_train_strings_refuses_unknown_test_speaker_and_no_data(tones, tmp_path, capsys):
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "nobody", "--runs", str(tmp_path), *TINY]
    assert cli.main(argv) == 2
    assert "nobody" in capsys.readouterr().err
    assert cli.main(["train-strings", "--runs", str(tmp_path), "--no-progress"]) == 2
    assert "--data" in capsys.readouterr().err


def test_tones_are_learnt(tones, tmp_path):
    """Enough steps on tone 'digits' bring the held-out speaker's strings close: the loop learns, not just runs."""
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "04", "--epochs", "3", "--runs", str(tmp_path),
            "--lr", "0.01", *TINY]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = tmp_path.iterdir()
    test = json.loads((folder / "metrics.json").read_text())["test"]
    assert test["lengths_1_12"]["digit_error_rate"] < 0.5, test["lengths_1_12"]
    assert np.isfinite(test["ten_digits"]["digit_error_rate"])


def test_validation_voices_are_split_once_across_folders_sharing_them():
    from audiomnist.string_model import StringTrainConfig
    from audiomnist.strings import Clips
    from audiomnist.train_strings import split_speakers

    voices = [f"s{i:03d}" for i in range(40)]
    speaker = ["george", "theo", "nicolas"] + voices + voices  # FSDD, then synthetic digits and strings (same ids)
    source = [0, 0, 0] + [1] * 40 + [2] * 40
    clips = Clips([np.zeros(1)] * len(speaker), ["1"] * len(speaker), speaker, source)
    cfg = StringTrainConfig(data=("fsdd", "digits", "strings"), test_speakers=("nicolas",), val_frac=0.25)
    train, val = split_speakers(clips, cfg)
    assert len(val) == 10 and val <= set(voices) and not train & val
    assert train | val == set(speaker) - {"nicolas"} and {"george", "theo"} <= train
