"""tools/make_model.py: trains the recipe on every speaker and ships weights plus metadata that load as a model."""

import hashlib
import importlib.util
import json
from pathlib import Path

import torch

from audiomnist.catalog import sample_root
from audiomnist.infer import Classifier

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_model.py"


def test_make_model_ships_a_loadable_model_trained_on_every_speaker(tmp_path):
    spec = importlib.util.spec_from_file_location("make_model", TOOL)
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
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
    ]
    assert make_model.main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["data"]["speakers"] == 16 and meta["recipe"]["kept"] == "last epoch"
    state = torch.load(out, weights_only=True)
    assert "optimizer" not in state and state["config"]["val_frac"] == 0 and state["config"]["test_frac"] == 0
    assert not Path(state["config"]["data"][0]).is_absolute(), "data inside the repository is recorded relative to it"
    x = torch.randn(8000, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    pred = Classifier.load(out).predict(x, 8000)
    assert pred.label in [str(d) for d in range(10)] and abs(sum(pred.probabilities.values()) - 1) < 1e-5
    onnx = Classifier.load(out.with_suffix(".onnx"))  # shipped beside it, for installs without torch
    assert onnx.backend == "onnx" and onnx.predict(x, 8000).label == pred.label
