"""`audiomnist train-strings`: a run folder from tone 'speakers', resume, evaluate, and the held-out report."""

import json

import numpy as np
import pytest
import torch

from audiomnist import cli, train_strings
from audiomnist.checkpoint import load_checkpoint
from audiomnist.string_model import config_from_dict, evaluate_run, load

from conftest import write_negatives, write_tone_set

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


def test_evaluate_scores_non_digit_clips_alone_and_among_the_digits(run, tmp_path, capsys):
    negs = write_negatives(tmp_path / "negs", speakers=2, clips=3)
    assert cli.main(["evaluate", str(run), "--negative", str(negs)]) == 0
    assert "6 non-digit clips" in capsys.readouterr().out
    nd = json.loads((run / "report" / "strings.json").read_text())["non_digits"]
    assert nd["clips"] == 6 and 0 <= nd["no_digit"] <= 1 and nd["digits_per_clip"] >= 0
    assert nd["digits_per_clip"] > 0 or nd["no_digit"] == 1
    assert nd["ten_digits_with_non_digits"]["strings"] == 10  # the run's --test-strings for its one speaker


def test_train_strings_refuses_unknown_test_speaker_and_no_data(tones, tmp_path, capsys):
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "nobody", "--runs", str(tmp_path), *TINY]
    assert cli.main(argv) == 2
    assert "nobody" in capsys.readouterr().err
    assert cli.main(["train-strings", "--runs", str(tmp_path), "--no-progress"]) == 2
    assert "--data" in capsys.readouterr().err


def test_tones_are_learnt(tones, tmp_path):
    """A few hundred steps on tone 'digits' take the held-out speaker well past chance: the loop learns, not just
    runs (about a minute on two cores)."""
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "04", "--epochs", "3", "--runs", str(tmp_path),
            *TINY, "--steps", "100"]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = tmp_path.iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < 0.6 * losses[0], losses
    assert metrics["test"]["isolated_clips"]["accuracy"] >= 0.3, metrics["test"]["isolated_clips"]


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


def test_init_fine_tunes_from_another_run_and_refuses_another_network(run, tones, tmp_path, capsys):
    """--init starts from the weights of an earlier run (its schedule is new); VTLP is on in the same run."""
    from audiomnist.string_model import load

    argv = ["train-strings", "--data", str(tones), "--test-speaker", "04", "--epochs", "1", "--runs", str(tmp_path),
            *TINY, "--steps", "1", "--lr", "1e-9", "--init", str(run), "--vtlp", "0.9", "1.1"]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = tmp_path.iterdir()
    assert config_from_dict(json.loads((folder / "config.json").read_text())).vtlp == (0.9, 1.1)
    start, tuned = load(run)[0].state_dict(), load(folder)[0].state_dict()
    # A 1e-9 learning rate for one step: the weights are the other run's (BatchNorm statistics move a little).
    assert all(torch.allclose(start[k], tuned[k], atol=1e-5) for k in start if "running" not in k and "num_" not in k)
    wider = [*argv[:-5], "--model-arg", "channels=16"]
    capsys.readouterr()
    assert cli.main(wider + ["--init", str(run), "--runs", str(tmp_path / "other")]) == 2
    assert "fine-tuning needs the same network" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # refused before any data is read or run folder made


def test_loso_trains_a_fold_per_speaker_and_sums_them_up(tones, tmp_path, capsys):
    base = ["train-strings", "--data", str(tones), "--loso", "--only", "01", "--only", "03", "--epochs", "1",
            *TINY, "--steps", "5"]  # fmt: skip
    argv = [*base, "--loso-dir", str(tmp_path / "cv")]
    assert cli.main(argv) == 0
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert list(cv["folds"]) == ["01", "03"] and {"mean", "std", "worst"} <= set(cv["summary"]["digit_error_rate"])
    for s in ("01", "03"):
        cfg = config_from_dict(json.loads((tmp_path / "cv" / f"fold-{s}" / "config.json").read_text()))
        assert cfg.test_speakers == (s,)
    capsys.readouterr()
    assert cli.main(argv) == 0  # a finished cv is kept, fold by fold
    assert capsys.readouterr().out.count("done before") == 2
    assert cli.main([*argv, "--only", "99"]) == 2
    tuned = [*base, "--loso-dir", str(tmp_path / "tuned")]  # each fold starts from the same fold's earlier run
    assert cli.main([*tuned, "--init", str(tmp_path / "cv")]) == 0
    cfg = config_from_dict(json.loads((tmp_path / "tuned" / "fold-03" / "config.json").read_text()))
    assert cfg.init == str(tmp_path / "cv" / "fold-03")
    capsys.readouterr()
    assert cli.main([*tuned, "--init", str(tmp_path / "cv" / "fold-01")]) == 2  # one run for every fold: refused
    assert "one run for all folds" in capsys.readouterr().err


def test_encoded_vectors_are_those_of_each_utterance_alone():
    """The pool is encoded in batches of similar lengths: every vector is the one the utterance gives alone."""
    from audiomnist.features import FeatureConfig
    from audiomnist.string_model import StringTrainConfig, string_frontend

    cfg = StringTrainConfig(model="emb-ctc", features=FeatureConfig(kind="speech_embedding"))
    frontend = string_frontend(cfg)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n) * np.hanning(n)).astype(np.float32) for n in (5000, 9000, 13001, 20000)]
    batched = train_strings.encode(frontend, waves, 8000)
    with torch.no_grad():
        alone = [frontend(torch.from_numpy(w)[None])[0] for w in waves]
    assert [len(b) for b in batched] == [len(a) for a in alone]
    assert max(float((a - b).abs().max()) for a, b in zip(alone, batched)) < 1e-4


def test_an_embedding_string_model_trains_on_an_encoded_pool(tmp_path):
    """11 tone speakers, so one is kept for validation, which is scored on its vectors encoded once too."""
    tones = write_tone_set(tmp_path / "tones", speakers=11, reps=1)
    tiny = [a for a in TINY if a not in ("--model-arg", "channels=32", "blocks=3")]
    argv = ["train-strings", "--data", str(tones), "--test-speaker", "04", "--epochs", "2", "--runs",
            str(tmp_path / "runs"), "--model", "emb-ctc", "--features.kind", "speech_embedding", "--pool", "48",
            "--model-arg", "hidden=32", *tiny, "--steps", "10"]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and "val_der" in metrics["history"][-1]
    assert metrics["test"]["ten_digits"]["strings"] == 10
    net, cfg = load(folder)
    assert cfg.model == "emb-ctc" and cfg.features.kind == "speech_embedding"


def test_string_configs_refuse_a_network_and_front_end_that_do_not_fit(tones, tmp_path, capsys):
    base = ["train-strings", "--data", str(tones), "--runs", str(tmp_path), "--no-progress"]
    assert cli.main([*base, "--model", "emb-ctc"]) == 2
    assert "--features.kind speech_embedding" in capsys.readouterr().err
    assert cli.main([*base, "--model", "emb-ctc", "--features.kind", "speech_embedding", "--vtlp", "0.9", "1.1"]) == 2
    assert "no --vtlp" in capsys.readouterr().err


def test_negatives_are_said_among_the_digits_of_training_speakers_only(tones, tmp_path):
    """--negative: a share of the assembled strings carry 1-3 non-digit clips (a fifth of those no digit at all);
    clips of validation or test speakers are left out, and the folder is saved resolved with the run's config."""
    from audiomnist.string_model import StringTrainConfig

    negs = write_negatives(tmp_path / "negs", speakers=3, clips=2)
    cfg = StringTrainConfig(data=(str(tones),), negatives=(str(negs),), negative_prob=1.0, test_speakers=("04",))
    clips = train_strings.load_clips(cfg.data, cfg.audio.sample_rate, progress=False)
    others = train_strings.load_others(cfg, {"neg1"}, progress=False)
    assert sorted(set(others.speaker)) == ["neg0", "neg2"] and len(others) == 4
    with pytest.raises(train_strings.AudiomnistError, match="none left"):
        train_strings.load_others(cfg, {"neg0", "neg1", "neg2"}, progress=False)
    src = train_strings.make_sources(clips, {"01", "02", "03"}, cfg, others)
    rng = np.random.default_rng(0)
    items = [train_strings.draw(clips, src, cfg, rng) for _ in range(60)]
    assert any(t == "" for _, t in items) and all(t.isdigit() for _, t in items if t)
    plain = train_strings.make_sources(clips, {"01", "02", "03"}, cfg)
    assert plain.others is None and all(t for _, t in (train_strings.draw(clips, plain, cfg, rng) for _ in range(20)))
    argv = ["train-strings", "--data", str(tones), "--negative", str(negs), "--test-speaker", "04", "--epochs", "1",
            "--runs", str(tmp_path / "runs"), *TINY, "--steps", "5"]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    saved = json.loads((folder / "config.json").read_text())
    assert saved["negatives"] == [str(negs.resolve())] and saved["negative_prob"] == 0.3


def test_string_probabilities_fold_the_word_label_into_blank():
    from audiomnist.string_model import StringTrainConfig, string_probabilities

    logits = torch.randn(5, 12)
    p = torch.softmax(logits, -1)
    cfg = StringTrainConfig(negatives=("x",), word_class=True)
    whole = string_probabilities(logits, cfg)
    assert whole.shape == (5, 11) and torch.allclose(whole[:, 0], p[:, 0] + p[:, 11])
    assert torch.allclose(whole[:, 1:], p[:, 1:11])
    dropped = string_probabilities(logits, StringTrainConfig(negatives=("x",), word_class=True, word_weight=0.0))
    assert torch.allclose(dropped, p[:, :11] / p[:, :11].sum(-1, True))
    assert torch.equal(string_probabilities(logits[:, :11], StringTrainConfig()), torch.softmax(logits[:, :11], -1))
    with pytest.raises(train_strings.ConfigError, match="needs --negative"):
        StringTrainConfig(word_class=True)


def test_a_word_class_run_learns_a_twelfth_label_and_decodes_eleven(tones, tmp_path):
    """--word-class: non-digit clips are written WORD in the training text (label 11); the saved network has 12
    outputs and everything that reads the run (StringNet, export, the recognisers) sees the usual 11 columns."""
    from audiomnist.string_model import StringNet, StringTrainConfig

    negs = write_negatives(tmp_path / "negs", speakers=3, clips=2)
    cfg = StringTrainConfig(data=(str(tones),), negatives=(str(negs),), negative_prob=1.0, word_class=True)
    clips = train_strings.load_clips(cfg.data, cfg.audio.sample_rate, progress=False)
    src = train_strings.make_sources(clips, {"01", "02", "03"}, cfg, train_strings.load_others(cfg, set(), False))
    rng = np.random.default_rng(0)
    texts = [train_strings.draw(clips, src, cfg, rng)[1] for _ in range(30)]
    assert all(train_strings.WORD in t for t in texts) and any(t.strip(train_strings.WORD) == "" for t in texts)
    argv = ["train-strings", "--data", str(tones), "--negative", str(negs), "--word-class", "--word-weight", "0.5",
            "--test-speaker", "04", "--epochs", "1", "--runs", str(tmp_path / "runs"), *TINY,
            "--steps", "5"]  # fmt: skip
    assert cli.main(argv) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert load_checkpoint(folder / "best.pt")["classes"][-1] == train_strings.WORD
    net, cfg = load(folder)
    assert cfg.word_class and cfg.word_weight == 0.5
    probs = StringNet(net, cfg)(torch.zeros(1, 4000))
    assert probs.shape[1] == 11 and torch.allclose(probs.sum(-1), torch.ones(len(probs)))
    assert cli.main(["export", str(folder), "--onnx", str(tmp_path / "w.onnx")]) == 0
    side = json.loads((tmp_path / "w.onnx.json").read_text())
    assert side["classes"][-1] == "9" and side["output"]["shape"][-1] == 11
