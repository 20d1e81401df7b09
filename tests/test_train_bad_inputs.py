"""Reliability of training: bad files named and skipped, checkpoints crafted to run code refused, a SIGKILLed run
resumed to the same result as an uninterrupted one."""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from audiomnist import cli
from audiomnist.checkpoint import load_checkpoint
from audiomnist.errors import AudiomnistError
from audiomnist.infer import Classifier

from conftest import BROKEN, FAST, GOOD, REPO, UNLABELLED, killed, mentioning, needs_proc, needs_sigkill

# In-process torch on one thread, like the ONE_THREAD_ENV subprocesses whose numbers these tests compare with.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_names_each_bad_file_and_uses_every_good_one(corpus, trained):
    run_dir, output = trained
    lines = output.splitlines()
    for name in list(BROKEN) + [UNLABELLED, "4_01_\\xff\\xfe.wav"]:
        assert mentioning(lines, name), f"{name} not mentioned:\n{output}"
    assert "Traceback" not in output
    split = json.loads((run_dir / "metrics.json").read_text())["split"]
    assert split["train_clips"] + split["val_clips"] + split["test_clips"] == len(GOOD)


class Payload:
    """Unpickling this runs os.makedirs(marker): what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_checkpoint_that_runs_code_is_refused(trained, tmp_path, capsys):
    marker = tmp_path / "pwned"
    good = torch.load(trained[0] / "best.pt", weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**good, "config": Payload(marker)}, evil)

    for load in (load_checkpoint, lambda p: Classifier.load(p), lambda p: Classifier.load(p, backend="onnx")):
        with pytest.raises(AudiomnistError, match="refused to load") as e:
            load(evil)
        assert str(evil) in str(e.value)
    assert cli.main(["predict", str(trained[0] / "best.pt"), "--model", str(evil)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "refused to load" in err and str(evil) in err

    run = tmp_path / "run"  # --resume reads last.pt: a poisoned one must be refused too
    run.mkdir()
    (run / "config.json").write_text((trained[0] / "config.json").read_text())
    torch.save({**torch.load(trained[0] / "last.pt", weights_only=True), "rng": Payload(marker)}, run / "last.pt")
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists(), "the payload ran"

    with pytest.raises(pickle.UnpicklingError):  # the payload is real: only weights_only stops it
        torch.load(evil, weights_only=True)
    torch.load(evil, weights_only=False)
    assert marker.is_dir()


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in sorted((REPO / "src" / "audiomnist").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
                calls.append((f"{path.name}:{node.lineno}", safe))
    assert calls, "no torch.load call found"
    assert all(safe for _, safe in calls), [c for c, safe in calls if not safe]


def all_checkpoints_load(run_dir: Path) -> dict[str, dict]:
    states = {p.name: load_checkpoint(p) for p in run_dir.glob("*.pt")}
    assert "last.pt" in states
    return states


@pytest.mark.slow
@needs_proc
@needs_sigkill
def test_sigkill_mid_epoch_then_resume_finishes_like_an_uninterrupted_run(corpus, killer, tmp_path):
    """Killed inside epoch 3, resumed, killed while writing epoch 4's last.pt, resumed: same result as one clean run."""
    args = ["train", "--data", str(corpus), *FAST, "--epochs", "5"]
    assert cli.main([*args, "--runs", str(tmp_path / "full")]) == 0
    (full,) = (tmp_path / "full").iterdir()

    steps = json.loads((full / "metrics.json").read_text())["split"]["train_clips"] // 16  # per epoch
    killed(killer, "step", 2 * steps + steps // 2 + 1, [*args, "--runs", str(tmp_path / "part")])  # inside epoch 3
    (part,) = (tmp_path / "part").iterdir()
    assert all_checkpoints_load(part)["last.pt"]["epoch"] == 1  # 0-based: epochs 1 and 2 were saved

    killed(killer, "save", 2, ["train", "--resume", str(part), "--no-progress"])  # dies writing epoch 4's last.pt
    states = all_checkpoints_load(part)
    assert states["last.pt"]["epoch"] == 2
    assert list(part.glob(".last.pt.*.tmp")), "the kill should have left a half-written temp file"

    assert cli.main(["train", "--resume", str(part), "--no-progress"]) == 0
    all_checkpoints_load(part)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3, 4, 5]
    for ha, hb in zip(a["history"], b["history"]):
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-4)
        assert hb["val_loss"] == pytest.approx(ha["val_loss"], rel=1e-4)
        assert hb["val_acc"] == pytest.approx(ha["val_acc"], abs=1e-6)
    assert b["test"]["accuracy"] == pytest.approx(a["test"]["accuracy"], abs=1e-6)
    assert b["test"]["macro_f1"] == pytest.approx(a["test"]["macro_f1"], abs=1e-6)
