"""Inference from .onnx models without torch: `predict`, serve's predict path, `listen --input` and Classifier run in
a fresh interpreter where torch and the training-only libraries cannot be imported, answer like the torch
pipeline, and never import torch (nor does an .onnx model where torch is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiomnist
from audiomnist import cli
from audiomnist.audio import load_audio
from audiomnist.catalog import sample_root
from audiomnist.checkpoint import load_calibrated
from audiomnist.export import export_onnx
from audiomnist.infer import PRETRAINED, Classifier

from conftest import reject_checkpoint

SRC = Path(audiomnist.__file__).resolve().parents[1]
TRAINING_ONLY = (
    "torch",
    "torchaudio",
    "librosa",
    "scipy",
    "sklearn",
    "pandas",
    "matplotlib",
    "tensorboard",
    "onnx",
    "onnxscript",
    "tqdm",
)

# Prepended to each child's code: an import hook that refuses the blocked top-level packages, as if not installed.
BLOCKER = """
import json, sys
BLOCKED = set({blocked!r})
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
sys.meta_path.insert(0, _Block())
def report(**kw):
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({training!r}))
    print("REPORT " + json.dumps({{**kw, "imported": heavy}}), file=sys.stderr)
"""


def run_child(code: str, blocked=TRAINING_ONLY) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    src = BLOCKER.format(blocked=tuple(blocked), training=TRAINING_ONLY) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith("REPORT ")]
    assert lines, f"child failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return done, json.loads(lines[-1][len("REPORT ") :])


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, Path]:
    """One spoken digit as an 8 kHz WAV, and a recording of four digits with pauses for listen --input."""
    folder = tmp_path_factory.mktemp("torch-free")
    digits = [4, 1, 5, 9]
    clips = [load_audio(sample_root() / "02" / f"{d}_02_0.flac", 8000) for d in digits]
    sf.write(folder / "7_sample.wav", load_audio(sample_root() / "01" / "7_01_0.flac", 8000), 8000)
    pause = np.zeros(4000, np.float32)
    sf.write(folder / "number.wav", np.concatenate([pause] + [x for c in clips for x in (c, pause)]), 8000)
    return {"one": folder / "7_sample.wav", "number": folder / "number.wav"}


def test_predict_runs_without_torch_and_answers_like_torch(wavs):
    done, report = run_child(f"""
        from audiomnist.cli import main
        code = main(["predict", {str(wavs["one"])!r}, "--format", "json", "--no-progress"])
        report(code=code)
    """)
    assert report == {"code": 0, "imported": []}, done.stderr
    (row,) = json.loads(done.stdout)
    assert "(onnx)" in done.stderr  # no --model and no torch: the shipped default.onnx
    want = Classifier.load(backend="torch").predict_file(wavs["one"])
    assert row["digit"] == want.label == "7"
    assert max(abs(row["probabilities"][c] - want.probabilities[c]) for c in want.probabilities) <= 1e-4


def test_classifier_serve_and_listen_run_without_torch(wavs, capsys):
    done, report = run_child(f"""
        from fastapi.testclient import TestClient
        from audiomnist.cli import main
        from audiomnist.infer import Classifier
        from audiomnist.serve import create_app
        clf = Classifier.load()
        p = clf.predict_file({str(wavs["one"])!r})
        with open({str(wavs["one"])!r}, "rb") as f:
            r = TestClient(create_app(clf)).post("/predict", files={{"file": ("one.wav", f, "audio/wav")}})
        code = main(["listen", "--input", {str(wavs["number"])!r}])
        report(backend=clf.backend, label=p.label, status=r.status_code, served=r.json()["digit"], code=code)
    """)
    assert report == {"backend": "onnx", "label": "7", "status": 200, "served": "7", "code": 0, "imported": []}
    assert cli.main(["listen", "--input", str(wavs["number"]), "--backend", "torch"]) == 0
    heard = capsys.readouterr().out.splitlines()[-1]
    assert len(heard) == 4 and heard.startswith("41")  # the synthetic voice's 5 may be heard as 9, by both
    assert done.stdout.splitlines()[-1] == heard


def test_a_checkpoint_without_torch_is_a_clear_error():
    done, report = run_child(f"""
        from audiomnist.errors import AudiomnistError
        from audiomnist.infer import Classifier
        try:
            Classifier.load({str(PRETRAINED / "default.pt")!r})
            report(error=None)
        except AudiomnistError as e:
            report(error=str(e))
    """)
    assert "need torch" in report["error"] and "audiomnist[train]" in report["error"] and report["imported"] == []


def test_an_onnx_model_never_imports_torch_even_where_it_is_installed(wavs):
    done, report = run_child(
        f"""
        from audiomnist.cli import main
        code = main(["predict", {str(wavs["one"])!r}, "--model", {str(PRETRAINED / "default.onnx")!r}])
        report(code=code)
    """,
        blocked=(),
    )
    assert report["code"] == 0, done.stderr
    assert not {"torch", "librosa", "sklearn", "pandas", "matplotlib"} & set(report["imported"]), report


def test_a_calibrated_none_class_export_answers_like_torch_without_torch(wavs, tmp_path):
    """The sidecar's temperature and the 'none' class: the torch-free child answers torch's probabilities and says
    'not a digit' where the none class wins, 'low confidence' under --min-prob."""
    results = {}
    for bias in (0.0, 40.0):
        ckpt = reject_checkpoint(tmp_path / f"m{bias:g}.pt", none_bias=bias, temperature=2.0)
        onnx = export_onnx(*load_calibrated(ckpt)[:3], tmp_path / f"m{bias:g}.onnx", temperature=2.0)
        done, report = run_child(f"""
            from audiomnist.infer import Classifier
            clf = Classifier.load({str(onnx)!r}, min_prob=0.3)
            p = clf.predict_file({str(wavs["one"])!r})
            report(label=p.label, reason=p.reason, probabilities=p.probabilities, t=clf.temperature)
        """)
        want = Classifier.load(ckpt, min_prob=0.3).predict_file(wavs["one"])
        assert report["imported"] == [] and report["t"] == 2.0
        assert (report["label"], report["reason"]) == (want.label, want.reason)
        assert max(abs(report["probabilities"][c] - want.probabilities[c]) for c in want.probabilities) <= 1e-4
        results[bias] = report["reason"]
    assert results == {0.0: "low confidence", 40.0: "not a digit"}  # untrained: unsure; dominant none: not a digit
