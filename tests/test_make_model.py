"""tools/make_model.py: trains the recipe on every speaker and ships weights plus metadata that load as a model."""

import hashlib
import json
from pathlib import Path

import torch

from audiomnist.catalog import sample_root
from audiomnist.infer import Classifier

from conftest import load_tool, write_negatives, write_tone_set


def test_make_model_ships_a_loadable_model_trained_on_every_speaker(tmp_path):
    make_model = load_tool("make_model")
    out = tmp_path / "m.pt"
    argv = [
        "--data",
        str(sample_root()),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--runs",
        str(tmp_path / "runs"),
        "--synth",
        "none",
        "--negatives",
        "none",
    ]
    assert make_model.main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["data"]["speakers"] == 16 and meta["recipe"]["kept"] == "last epoch"
    assert "--augment" not in meta["recipe"]["command"], "the digits-only recipe was measured without perturbation"
    state = torch.load(out, weights_only=True)
    assert "optimizer" not in state and state["config"]["val_frac"] == 0 and state["config"]["test_frac"] == 0
    assert not Path(state["config"]["data"][0]).is_absolute(), "data inside the repository is recorded relative to it"
    clip = sorted(sample_root().rglob("*.flac"))[0]
    pred = Classifier.load(out).predict_file(clip)
    assert pred.label in [str(d) for d in range(10)] and abs(sum(pred.probabilities.values()) - 1) < 1e-5
    onnx = Classifier.load(out.with_suffix(".onnx"))  # shipped beside it, for installs without torch
    assert onnx.backend == "onnx" and onnx.predict_file(clip).label == pred.label


def test_the_none_recipe_ships_its_calibration_to_torch_and_onnx(tmp_path, one_thread):
    """With negatives (the shared data's other-language folders beside FSDD, and a synthetic-words folder) the
    shipped model has the none class, the recipe's temperature and p(none) threshold, in the checkpoint and the
    ONNX sidecar alike."""
    make_model = load_tool("make_model")
    shared = tmp_path / "shared"
    fsdd = write_tone_set(shared / "fsdd" / "recordings", speakers=3, reps=1)
    for name in ("bengali", "ukrainian"):
        write_negatives(shared / name, speakers=2, clips=2)
    negatives = write_negatives(tmp_path / "words", speakers=2, clips=2)
    out = tmp_path / "m.pt"
    argv = ["--data", str(fsdd), "--epochs", "1", "--out", str(out), "--runs", str(tmp_path / "runs"),
            "--synth", "none", "--negatives", str(negatives)]  # fmt: skip
    assert make_model.main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert "--negative" in meta["recipe"]["command"] and "--model emb-head" in meta["recipe"]["command"]
    assert meta["config"]["augment"]["speed"] == [0.9, 1.1] and meta["config"]["augment"]["tilt"] == 0.3
    for clf in (Classifier.load(out), Classifier.load(out.with_suffix(".onnx"))):
        assert clf.classes[-1] == "none" and clf.none_threshold == make_model.NONE_THRESHOLD
        assert clf.temperature == make_model.TEMPERATURE
    assert meta["calibration"]["none_threshold"] == make_model.NONE_THRESHOLD
    (run,) = (tmp_path / "runs").iterdir()  # --run packages a finished run of the recipe: the same weights
    again = tmp_path / "again.pt"
    assert make_model.main([*argv[:5], str(again), *argv[6:], "--run", str(run)]) == 0
    assert torch.equal(torch.load(again, weights_only=True)["model"]["classifier.bias"],
                       torch.load(out, weights_only=True)["model"]["classifier.bias"])  # fmt: skip


def test_negatives_are_made_in_process_and_appear_whole(tmp_path, monkeypatch):
    make_model = load_tool("make_model")
    monkeypatch.setattr(make_model, "NEG_ARGS", ["--noise", "2", "--seed", "0"])  # noise only: no synthesiser needed
    out = tmp_path / "negatives"
    assert make_model.make_negatives(out) == 0
    assert len(list(out.glob("*.wav"))) == 2 and not (tmp_path / "negatives.partial").exists()
