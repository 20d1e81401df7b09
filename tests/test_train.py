"""Training end to end on a tiny generated dataset: run folder, honest splits, resume, presets, targets."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiomnist import cli
from audiomnist.checkpoint import load_checkpoint, load_trained
from audiomnist.errors import AudiomnistError
from audiomnist.runconfig import PRESETS, TrainConfig, config_from_dict, with_preset

from conftest import FAST_TRAIN, write_tone_set


@pytest.fixture(scope="module")
def tone_set(tmp_path_factory) -> Path:
    """AudioMNIST layout: 5 speakers x 10 digits x 4 repetitions, with speaker metadata (2 female, 3 male)."""
    root = write_tone_set(tmp_path_factory.mktemp("tones"), speakers=5, reps=4)
    meta = {
        f"{s:02d}": {"gender": "female" if s <= 2 else "male", "age": 30, "accent": "german", "recordingroom": "Kino"}
        for s in range(1, 6)
    }
    (root / "audioMNIST_meta.txt").write_text(json.dumps(meta))
    return root


def run(args: list[str]) -> int:
    return cli.main(args)


def only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


FAST = FAST_TRAIN


def train_cmd(data: Path, runs: Path, *extra: str) -> list[str]:
    """`audiomnist train` on `data` with run folders under `runs`, plus `extra` flags."""
    return ["train", "--data", str(data), "--runs", str(runs), *extra]


@pytest.fixture(scope="module")
def trained(tone_set, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert run(["train", "--data", str(tone_set), "--runs", str(runs), *FAST]) == 0
    return only_run(runs)


def test_run_folder_has_everything(trained):
    for name in (
        "config.json",
        "metrics.json",
        "best.pt",
        "last.pt",
        "curves.png",
        "report/confusion.png",
        "report/confusion.csv",
        "report/misclassified.csv",
        "report/per_speaker.csv",
        "report/metrics.json",
    ):
        assert (trained / name).is_file(), name
    assert any((trained / "tb").iterdir()), "no TensorBoard event files"
    metrics = json.loads((trained / "metrics.json").read_text())
    assert len(metrics["history"]) == 3
    split = metrics["split"]
    assert not split["speaker_leaking"]
    assert not set(split["test_speakers"]) & set(split["train_speakers"])
    assert not set(split["val_speakers"]) & set(split["train_speakers"])
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_config_json_reproduces_the_config(trained):
    cfg = config_from_dict(json.loads((trained / "config.json").read_text()))
    assert isinstance(cfg, TrainConfig) and cfg.epochs == 3 and cfg.model_args == {"width": 1}
    net, cfg2, classes = load_trained(trained)
    assert cfg2 == cfg and classes == [str(d) for d in range(10)]
    assert not net.training


def test_checkpoints_are_plain_weights(trained):
    state = torch.load(trained / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "history", "epoch", "config", "classes"} <= set(state)
    assert load_checkpoint(trained / "best.pt")["classes"] == [str(d) for d in range(10)]


def test_learns_tones_on_unseen_speakers(tone_set, tmp_path):
    """A recipe that works must separate ten well-separated tones on held-out speakers (120 clips: 20 epochs is 160
    steps)."""
    assert run(train_cmd(tone_set, tmp_path, "--epochs", "20", "--batch-size", "16", "--no-progress")) == 0
    metrics = json.loads((only_run(tmp_path) / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_learns_on_cuda_with_mixed_precision(tone_set, tmp_path):
    """The GPU path end to end: int16 rows from pinned memory, placement, augmentation, log-mel and SpecAugment on
    the device, autocast; the checkpoint then loads and runs on the CPU."""
    assert (
        run(train_cmd(tone_set, tmp_path, "--epochs", "20", "--batch-size", "16", "--device", "cuda", "--no-progress"))
        == 0
    )
    run_dir = only_run(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["amp"] is True
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] >= 0.9
    net, cfg, _ = load_trained(run_dir, "cpu")
    assert next(net.parameters()).device.type == "cpu"
    assert torch.isfinite(
        net(torch.randn(2, 1, cfg.features.n_mels, cfg.features.num_frames(cfg.audio.num_samples)))
    ).all()


def test_mixup_trains_and_is_recorded(tone_set, tmp_path):
    """Mixup blends pairs of training clips; the recipe must still separate the tones and say it used mixup."""
    assert (
        run(train_cmd(tone_set, tmp_path, "--epochs", "20", "--batch-size", "16", "--mixup", "0.3", "--no-progress"))
        == 0
    )
    run_dir = only_run(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["mixup"] == 0.3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]


def test_resume_finishes_like_an_uninterrupted_run(tone_set, tmp_path, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run(["train", "--data", str(tone_set), "--runs", str(full), *FAST]) == 0

    import audiomnist.train as train_mod

    real_save, saved = train_mod.save_checkpoint, []

    def save_then_die(state, path):
        real_save(state, path)
        saved.append(Path(path).name)
        if saved.count("last.pt") == 2:
            raise KeyboardInterrupt  # killed right after epoch 2 was checkpointed

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    assert run(["train", "--data", str(tone_set), "--runs", str(part), *FAST]) == 130
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    part_dir = only_run(part)
    assert torch.load(part_dir / "last.pt", weights_only=True)["epoch"] == 1  # 0-based: two epochs done
    assert run(["train", "--resume", str(part_dir), "--no-progress"]) == 0

    a = json.loads((only_run(full) / "metrics.json").read_text())
    b = json.loads((part_dir / "metrics.json").read_text())
    assert len(b["history"]) == 3
    for ea, eb in zip(a["history"], b["history"]):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], rel=1e-4)
        assert ea["val_acc"] == pytest.approx(eb["val_acc"], abs=1e-6)
    assert a["test"]["accuracy"] == pytest.approx(b["test"]["accuracy"], abs=1e-6)


def test_random_split_is_labelled_leaky(tone_set, tmp_path, capsys):
    assert run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--split", "random", *FAST]) == 0
    out = capsys.readouterr().out
    assert "SPEAKER-LEAKING" in out
    assert json.loads((only_run(tmp_path) / "metrics.json").read_text())["split"]["speaker_leaking"] is True


def test_gender_target_balances_speakers(tone_set, tmp_path):
    assert run(train_cmd(tone_set, tmp_path, "--target", "gender", "--test-frac", "0.5", "--val-frac", "0", *FAST)) == 0
    run_dir = only_run(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    used = set(metrics["split"]["train_speakers"]) | set(metrics["split"]["test_speakers"])
    assert len(used) == 4, "2 female + 2 of the 3 male speakers"
    assert load_checkpoint(run_dir / "best.pt")["classes"] == ["female", "male"]


def test_presets_reproduce_the_original_recipes():
    v1, v2, v3 = (with_preset(TrainConfig(), name) for name in ("v1", "v2", "v3"))
    assert v1.audio.duration_ms == 1500 and v1.audio.pad_mode == "zeros"
    assert v2.audio.duration_ms == 1000 and v2.audio.pad_mode == "zeros"
    assert v3.audio.pad_mode == "noise"
    for p in (v1, v2, v3):
        assert p.model == "seed-cnn" and p.audio.sample_rate == 48000
        assert p.features.n_fft == 1024 and p.features.n_mels == 64
        assert p.features.normalize == "utterance", "per clip: the original's per-batch statistics leak the batch"
        assert (p.optimizer, p.lr, p.epochs, p.batch_size) == ("adam", 1e-3, 10, 16)
    assert set(PRESETS) == {"v1", "v2", "v3"}


def test_preset_v2_trains(tone_set, tmp_path):
    assert run(train_cmd(tone_set, tmp_path, "--preset", "v2", "--epochs", "1", "--no-progress")) == 0
    cfg = json.loads((only_run(tmp_path) / "config.json").read_text())
    assert cfg["model"] == "seed-cnn" and cfg["audio"]["sample_rate"] == 48000 and cfg["preset"] == "v2"


def test_bad_arguments_are_clear_errors(tone_set, tmp_path, capsys):
    assert run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--preset", "v9"]) == 2
    assert "unknown --preset" in capsys.readouterr().err
    assert run(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--mixup", "-1"]) == 2
    assert "mixup alpha must be >= 0" in capsys.readouterr().err
    assert (
        run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--config", str(tmp_path / "missing.json")])
        == 2
    )
    assert "missing.json" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert (
        run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--config", str(tmp_path / "broken.json")]) == 2
    )
    assert "broken.json: cannot read it as JSON" in capsys.readouterr().err
    (tmp_path / "unknown.json").write_text(json.dumps({"epochs": 1, "epochz": 2}))
    assert (
        run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--config", str(tmp_path / "unknown.json")])
        == 2
    )
    assert "unknown.json: TrainConfig: unknown config keys ['epochz']" in capsys.readouterr().err
    (tmp_path / "bad-value.json").write_text(json.dumps({"mixup": -2}))
    assert (
        run(["cv", "--data", str(tone_set), "--runs", str(tmp_path), "--config", str(tmp_path / "bad-value.json")]) == 2
    )
    assert "bad-value.json: mixup alpha must be >= 0" in capsys.readouterr().err


def test_a_corrupt_run_file_is_a_clear_error_naming_it(trained, tmp_path, capsys):
    import shutil

    broken = tmp_path / "run"
    shutil.copytree(trained, broken)
    (broken / "config.json").write_text("{cut off")
    assert run(["train", "--resume", str(broken)]) == 2
    assert "config.json: cannot read it as JSON" in capsys.readouterr().err
    shutil.copy(trained / "config.json", broken / "config.json")
    (broken / "metrics.json").write_text("")
    assert run(["evaluate", str(broken)]) == 2
    assert "metrics.json: cannot read it as JSON" in capsys.readouterr().err


def test_random_split_is_the_original_80_20(tone_set, tmp_path):
    assert run(["train", "--data", str(tone_set), "--runs", str(tmp_path), "--split", "random", *FAST]) == 0
    split = json.loads((only_run(tmp_path) / "metrics.json").read_text())["split"]
    assert (split["train_clips"], split["val_clips"], split["test_clips"]) == (160, 0, 40)


def test_partial_config_changes_only_what_it_names(tone_set, tmp_path):
    cfg_file = tmp_path / "partial.json"
    cfg_file.write_text(json.dumps({"audio": {"duration_ms": 800}, "augment": {"tilt": 0.2}}))
    runs = tmp_path / "runs"
    assert (
        run(["train", "--data", str(tone_set), "--runs", str(runs), "--config", str(cfg_file), "--n-mels", "32", *FAST])
        == 0
    )
    cfg = json.loads((only_run(runs) / "config.json").read_text())
    assert cfg["audio"]["duration_ms"] == 800 and cfg["audio"]["sample_rate"] == 8000, "the rest of audio is kept"
    assert cfg["augment"]["tilt"] == 0.2 and cfg["features"]["n_mels"] == 32


def test_cv_then_evaluate_a_fold_on_its_own_test_speakers(tone_set, tmp_path, capsys):
    from audiomnist.evaluate import evaluate_run

    runs = tmp_path / "cv"
    assert run(["cv", "--data", str(tone_set), "--runs", str(runs), "--folds", "5", "--only", "1", *FAST]) == 0
    (cv_dir,) = list(runs.iterdir())
    fold = cv_dir / "fold-1"
    summary = json.loads((cv_dir / "cv.json").read_text())
    held_out = summary["per_fold"][0]["test_speakers"]
    assert len(held_out) == 1 and summary["per_fold"][0]["clips"] == 40
    assert held_out[0] not in json.loads((fold / "metrics.json").read_text())["split"]["train_speakers"]
    state = torch.load(fold / "best.pt", weights_only=True)
    assert state["epoch"] == 2, "without validation speakers the last epoch is kept"
    report = evaluate_run(fold, out=tmp_path / "again", progress=False)
    assert report["clips"] == 40 and set(report["per_speaker_accuracy"]) == set(held_out)
    assert report["accuracy"] == pytest.approx(summary["per_fold"][0]["accuracy"])


def test_init_copies_matching_layers_and_leaves_a_new_output_layer(trained, tmp_path):
    from audiomnist import models
    from audiomnist.checkpoint import init_from

    run_dir = trained
    net, cfg, _ = load_trained(run_dir)
    same = models.create(cfg.model, 10, **cfg.model_args)
    assert init_from(same, run_dir) == []
    for (k, a), b in zip(net.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), k
    other = models.create(cfg.model, 2, **cfg.model_args)  # e.g. gender: only the output layer differs
    fresh = init_from(other, run_dir)
    assert fresh and all(k.startswith(fresh[0].rsplit(".", 1)[0]) for k in fresh), fresh
    with pytest.raises(AudiomnistError, match="no layer"):
        init_from(torch.nn.Linear(3, 2), run_dir)


def test_data_weights_draw_each_folder_in_proportion(tone_set, tmp_path):
    from audiomnist.dataset import load_data, row_weights, weighted_rows
    from audiomnist.runconfig import with_data

    other = write_tone_set(tmp_path / "other", speakers=1, reps=4, speaker_offset=7)
    cfg = dataclasses.replace(with_data(TrainConfig(), [tone_set, other]), data_weights=(1.0, 5.0))
    data = load_data(cfg, progress=False)
    assert sorted(np.bincount(data.source)) == [40, 200]
    rows = weighted_rows(data, data.usable, cfg.data_weights, torch.Generator().manual_seed(0))
    share = (data.source[rows] == 1).mean()  # 40 clips x 5 against 200 x 1: half the draws
    assert len(rows) == len(data.usable) and 0.4 < share < 0.6, share
    assert set(row_weights(data, data.usable, cfg.data_weights)[data.source[data.usable] == 1]) == {5.0}
    with pytest.raises(AudiomnistError, match="one positive --data-weight"):
        dataclasses.replace(cfg, data_weights=(1.0,))


def test_cv_folds_over_the_first_folders_and_always_trains_on_the_rest(tone_set, tmp_path):
    extra = write_tone_set(tmp_path / "extra", speakers=2, reps=1, speaker_offset=20)
    runs = tmp_path / "cv"
    assert (
        run(
            [
                "cv",
                "--data",
                str(tone_set),
                "--data",
                str(extra),
                "--fold-folders",
                "1",
                "--folds",
                "loso",
                "--only",
                "0",
                "--runs",
                str(runs),
                *FAST,
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    (cv_dir,) = list(runs.iterdir())
    summary = json.loads((cv_dir / "cv.json").read_text())
    assert len(summary["per_fold"]) == 1 and summary["per_fold"][0]["clips"] == 40
    split = json.loads((cv_dir / "fold-0" / "metrics.json").read_text())["split"]
    assert split["train_clips"] == 4 * 40 + 2 * 10, "the other tone speakers and every extra clip"
    assert not set(split["test_speakers"]) & set(split["train_speakers"])


@pytest.mark.slow
def test_the_pretrained_encoder_learns_digits_from_three_voices(fsdd_dir, tmp_path):
    """emb-head over the frozen speech_embedding encoder: 3 FSDD speakers x 12 takes, a few epochs, and most digits
    of a fourth speaker it never heard are right (a network trained from scratch needs far more voices for that)."""
    data = tmp_path / "fsdd"
    data.mkdir()
    for speaker in ("george", "jackson", "lucas", "theo"):
        for path in fsdd_dir.glob(f"*_{speaker}_*.wav"):
            if int(path.stem.split("_")[2]) < 12:
                (data / path.name).symlink_to(path)
    extra = ["--model", "emb-head", "--epochs", "6", "--batch-size", "32", "--val-frac", "0", "--test-frac", "0.25"]
    assert run(train_cmd(data, tmp_path / "runs", *extra, "--no-progress")) == 0
    metrics = json.loads((only_run(tmp_path / "runs") / "metrics.json").read_text())
    assert len(metrics["split"]["test_speakers"]) == 1 and metrics["split"]["test_clips"] == 120
    assert metrics["test"]["accuracy"] >= 0.8, metrics["test"]
