"""Inference from .onnx models without torch: `predict`, serve's predict and transcribe paths, `listen --input` and
Classifier run in a fresh interpreter where torch and the training-only libraries cannot be imported, answer like
the torch pipeline, and never import torch (nor does an .onnx model where torch is installed).

The install itself is tested too: tools/torch_free_venv.py builds a new venv holding the project's wheel and the base
dependencies pip resolves from its metadata (no torch installed at all), and `predict`, `listen --input` and
Classifier run there. That needs the package index (PyPI) and skips, saying so, where it is unreachable."""

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
VENV_TOOL = Path(__file__).resolve().parents[1] / "tools" / "torch_free_venv.py"
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
    sf.write(folder / "7_sample.wav", load_audio(sample_root() / "02" / "7_02_0.flac", 8000), 8000)
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


def test_predict_loads_numpy_with_one_blas_thread_and_leaves_the_environment_as_it_was(wavs):
    done, report = run_child(f"""
        import importlib, os
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
        seen, real = {{}}, importlib.import_module
        def spy(name, *args):
            seen[name] = os.environ.get("OPENBLAS_NUM_THREADS")
            return real(name, *args)
        importlib.import_module = spy
        from audiomnist.cli import main
        code = main(["predict", {str(wavs["one"])!r}, "--format", "json"])
        report(code=code, seen=seen, after=os.environ.get("OPENBLAS_NUM_THREADS"))
    """)
    assert report["code"] == 0 and report["seen"]["audiomnist.infer"] == "1" and report["after"] is None, report


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


def test_serve_transcribes_with_an_onnx_string_model_without_torch(string_model, wavs):
    from audiomnist.recognizer import StringRecognizer

    done, report = run_child(f"""
        from fastapi.testclient import TestClient
        from audiomnist.infer import Classifier
        from audiomnist.recognizer import StringRecognizer
        from audiomnist.serve import create_app
        app = create_app(Classifier.load(), strings=StringRecognizer.load({str(string_model[1])!r}))
        with open({str(wavs["number"])!r}, "rb") as f:
            r = TestClient(app).post("/transcribe", files={{"file": ("number.wav", f, "audio/wav")}})
        report(status=r.status_code, digits=r.json()["digits"], backend=r.json()["backend"])
    """)
    onnx_ears = str(PRETRAINED / "default.onnx")  # the rescoring model the child has: torch is not there
    want = StringRecognizer.load(string_model[0], rescore=onnx_ears).transcribe_file(wavs["number"]).digits
    assert report == {"status": 200, "digits": want, "backend": "onnx", "imported": []}, done.stderr[-2000:]


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """The python of a new venv with the inference install (about 10-15 s on two busy cores, pip's cache warm)."""
    folder = tmp_path_factory.mktemp("torch-free-venv") / "venv"
    done = subprocess.run([sys.executable, str(VENV_TOOL), str(folder)], capture_output=True, text=True, timeout=900)
    if done.returncode == 3:
        pytest.skip(f"building the torch-free venv needs the package index: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-4000:]
    return Path(done.stdout.strip())


def run_in_venv(python: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command of the venv run as a user would: no PYTHONPATH (so not this checkout's src/), outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([*argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.network
@pytest.mark.slow
def test_the_inference_install_predicts_without_torch(venv_python, wavs):
    bin_ = venv_python.parent
    cwd = wavs["one"].parent
    done = run_in_venv(venv_python, str(bin_ / "audiomnist"), "predict", str(wavs["one"]), "--format", "json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert "(onnx)" in done.stderr
    want = Classifier.load(backend="torch").predict_file(wavs["one"])
    assert row["digit"] == want.label == "7"
    assert max(abs(row["probabilities"][c] - want.probabilities[c]) for c in want.probabilities) <= 1e-4

    script = f"""
        import importlib.util, json, sys
        import audiomnist
        from audiomnist.cli import main
        from audiomnist.infer import Classifier
        missing = {{m: importlib.util.find_spec(m) is None for m in {TRAINING_ONLY!r}}}
        clf = Classifier.load()
        p = clf.predict_file({str(wavs["one"])!r})
        code = main(["listen", "--input", {str(wavs["number"])!r}])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({TRAINING_ONLY!r}))
        print(json.dumps(dict(file=audiomnist.__file__, missing=missing, backend=clf.backend, label=p.label,
                              code=code, imported=heavy)))
    """
    done = run_in_venv(venv_python, str(venv_python), "-c", textwrap.dedent(script), cwd=cwd)
    assert done.returncode == 0, done.stderr
    *heard, last = done.stdout.splitlines()
    report = json.loads(last)
    assert Path(report["file"]).is_relative_to(venv_python.parents[1]), report["file"]  # the installed copy
    assert all(report["missing"].values()), report["missing"]  # torch & co. are not installed, not merely unused
    assert (report["backend"], report["label"], report["code"], report["imported"]) == ("onnx", "7", 0, [])
    assert len(heard[-1]) == 4 and heard[-1].startswith("41")


@pytest.mark.network
@pytest.mark.slow
def test_the_inference_install_names_the_extra_other_commands_need(venv_python, tmp_path):
    for command, extra in (("train", "train"), ("export", "train"), ("serve", "serve")):
        done = run_in_venv(venv_python, str(venv_python.parent / "audiomnist"), command, "--help", cwd=tmp_path)
        assert done.returncode != 0 and f"pip install 'audiomnist[{extra}]'" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr


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
