"""ONNX export of the whole pipeline (waveform window -> probabilities): ONNX Runtime matches the PyTorch pipeline
(features.LogMel + network + softmax) on real and generated clips, any batch size, for every registered model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from audiomnist import cli, models
from audiomnist.errors import AudiomnistError
from audiomnist.export import OPSET, export_onnx, sample_windows, torch_probabilities
from audiomnist.features import DftLogMel, FeatureConfig, LogMel
from audiomnist.infer import PRETRAINED, Classifier
from audiomnist.onnx_model import FORMAT, INPUT, OUTPUT, ModelInfo, read_sidecar, sidecar_path
from audiomnist.runconfig import TrainConfig, config_from_dict
from audiomnist.torch_infer import TorchPipeline

CLASSES = [str(d) for d in range(10)]
TOL = 1e-4


# Single clips gain nothing from intra-op threads, and on a busy machine waiting for them dominates.
pytestmark = pytest.mark.usefixtures("one_thread")


def config_for(name: str) -> TrainConfig:
    """The default recipe with the model's own recommended audio and feature settings (audionet: raw waveform)."""
    cfg = TrainConfig(model=name)
    rec = getattr(models.get(name), "recommended", {}) or {}
    return dataclasses.replace(
        cfg,
        audio=dataclasses.replace(cfg.audio, **rec.get("audio", {})),
        features=dataclasses.replace(cfg.features, **rec.get("features", {})),
    )


def generated_clips(sample_rate: int, n: int = 5) -> list[np.ndarray]:
    """Word-like clips: harmonic tones with an envelope in a little noise, 0.3 to 1.4 s (padded and cropped)."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        length = int(sample_rate * (0.3 + 0.275 * i))
        t = np.arange(length) / sample_rate
        f0 = 110 + 40 * i
        tone = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.2 * t)) / k for k in range(1, 6))
        envelope = np.sin(np.pi * np.arange(length) / length) ** 2
        clips.append((0.3 * tone * envelope + 0.003 * rng.standard_normal(length)).astype(np.float32))
    return clips


def calibrated(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """An untrained net whose BatchNorm statistics come from x, so its activations have trained-like scales."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(x)
    return net.eval()


# One answer per clip; sequence models (ctc-tcn, for digit strings) export through export_string_onnx.
CLASSIFIERS = [n for n in models.available() if not getattr(models.get(n), "sequence", False)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple[Classifier, Classifier, Path]]:
    """Per registered model: torch and onnx Classifiers of one untrained, calibrated network, and the .onnx file."""
    out = {}
    folder = tmp_path_factory.mktemp("onnx")
    for name in CLASSIFIERS:
        torch.manual_seed(0)
        cfg = config_for(name)
        pipeline = TorchPipeline(models.create(name, len(CLASSES)), cfg)
        torch_clf = Classifier(pipeline, cfg, CLASSES, "torch")
        windows = torch_clf.windows(generated_clips(cfg.audio.sample_rate, 8))
        calibrated(pipeline.net, pipeline.frontend(torch.from_numpy(windows)))
        path = export_onnx(pipeline.net, cfg, CLASSES, folder / f"{name}.onnx")
        out[name] = (torch_clf, Classifier.load(path), path)
    return out


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("default") / "default.onnx"
    torch_clf = Classifier.load("default", backend="torch")
    pipe = torch_clf.pipeline
    export_onnx(pipe.net, torch_clf.cfg, torch_clf.classes, path, pipe.temperature, pipe.none_threshold)
    return torch_clf, path


def assert_match(torch_clf: Classifier, onnx_clf: Classifier, clips: list[np.ndarray]) -> None:
    """Probabilities of ONNX Runtime and PyTorch agree within TOL, for a batch of 1 and of all clips."""
    windows = torch_clf.windows(clips)
    for batch in (windows[:1], windows):
        got, want = onnx_clf.probabilities(batch), torch_clf.probabilities(batch)
        assert got.shape == want.shape == (len(batch), len(torch_clf.classes))
        assert np.abs(got - want).max() <= TOL


@pytest.mark.parametrize(
    "features",
    [
        FeatureConfig(),
        FeatureConfig(normalize="utterance", top_db=None),
        FeatureConfig(normalize="none", n_fft=512, win_length=400, hop_length=160),
    ],
)
def test_dft_logmel_equals_the_stft_logmel(features):
    x = torch.from_numpy(np.stack([np.pad(c, (0, max(0, 16000 - len(c))))[:16000] for c in generated_clips(16000, 4)]))
    got, want = DftLogMel(features, 16000)(x), LogMel(features, 16000)(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4


def test_every_model_exports_and_matches_on_generated_clips(exports):
    assert set(exports) == set(CLASSIFIERS) >= {"seed-cnn", "bcresnet", "audionet"}
    for torch_clf, onnx_clf, _ in exports.values():
        assert_match(torch_clf, onnx_clf, generated_clips(torch_clf.sample_rate))


def test_every_model_matches_on_real_clips(exports, fsdd_dir):
    paths = sorted(fsdd_dir.glob("*_0.wav"))[::6][:10]
    for name, (torch_clf, onnx_clf, _) in exports.items():
        assert_match(torch_clf, onnx_clf, [torch_clf.load_file(p) for p in paths])
        got = [p.label for p in onnx_clf.predict_files(paths)[0]]
        assert got == [p.label for p in torch_clf.predict_files(paths)[0]], name


def test_default_model_matches_on_the_shipped_sample(default_onnx):
    """The acceptance check: real (synthetic-voice) clips of every sample speaker, max probability diff <= 1e-4."""
    torch_clf, path = default_onnx
    windows = sample_windows(torch_clf.cfg, limit=80)
    assert len(windows) >= 40
    want = torch_probabilities(torch_clf.pipeline.net, torch_clf.cfg, windows, torch_clf.temperature)
    np.testing.assert_allclose(Classifier.load(path).probabilities(windows), want, rtol=0, atol=TOL)
    np.testing.assert_allclose(torch_clf.probabilities(windows), want, rtol=0, atol=1e-6)


def test_default_model_matches_on_fsdd(default_onnx, fsdd_dir):
    torch_clf, path = default_onnx
    paths = sorted(fsdd_dir.glob("*.wav"))[::25]
    assert_match(torch_clf, Classifier.load(path), [torch_clf.load_file(p) for p in paths])


def test_shipped_onnx_is_the_shipped_checkpoint(default_onnx):
    """pretrained/default.onnx (used without torch) must be an export of pretrained/default.pt: rerun
    `python tools/make_model.py --onnx-only` after changing either."""
    torch_clf, _ = default_onnx
    shipped = Classifier.load(PRETRAINED / "default.onnx")
    assert shipped.classes == torch_clf.classes and shipped.cfg.audio == torch_clf.cfg.audio
    assert config_from_dict(read_sidecar(PRETRAINED / "default.onnx")["config"]) == torch_clf.cfg
    assert_match(torch_clf, shipped, generated_clips(8000, 5))
    assert Classifier.load(backend="onnx").pipeline.path == PRETRAINED / "default.onnx"


def test_dynamic_batch_gives_each_item_its_own_answer(default_onnx):
    torch_clf, path = default_onnx
    onnx_clf = Classifier.load(path)
    waves = torch_clf.windows(generated_clips(torch_clf.sample_rate, 5))
    together = onnx_clf.probabilities(waves)
    alone = np.concatenate([onnx_clf.probabilities(waves[i : i + 1]) for i in range(5)])
    assert together.shape == (5, len(torch_clf.classes))
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, torch_clf.probabilities(waves), atol=TOL)


def test_sidecar_roundtrip(default_onnx):
    torch_clf, path = default_onnx
    side = read_sidecar(path)
    assert sidecar_path(path) == path.with_name("default.onnx.json")
    assert config_from_dict(side["config"]) == torch_clf.cfg
    assert side["classes"] == torch_clf.classes
    assert side["model"] == torch_clf.cfg.model and side["format"] == FORMAT
    assert side["input"]["name"] == INPUT and side["input"]["shape"] == ["batch", torch_clf.cfg.audio.num_samples]
    assert side["input"]["sample_rate"] == 8000 and side["input"]["dtype"] == "float32"
    assert side["output"] == {"name": OUTPUT, "shape": ["batch", len(torch_clf.classes)]}
    assert side["opset"] == OPSET and side["torch"] == torch.__version__
    clf = Classifier.load(path)
    assert (clf.backend, clf.classes, clf.sample_rate) == ("onnx", torch_clf.classes, 8000)
    assert clf.cfg == ModelInfo(torch_clf.cfg.model, torch_clf.cfg.target, torch_clf.cfg.audio)


def test_waveform_model_sidecar_describes_waveform_input(exports):
    side = read_sidecar(exports["audionet"][2])
    assert side["input"]["name"] == INPUT and side["input"]["shape"] == ["batch", 8000]
    assert side["config"]["features"]["kind"] == "waveform"


def test_a_network_only_export_is_refused_with_a_re_export_hint(default_onnx, tmp_path):
    path = tmp_path / "old.onnx"
    shutil.copy(default_onnx[1], path)
    side = read_sidecar(default_onnx[1])
    side.update(format=1, input={"name": "features", "shape": ["batch", 1, 40, 101], "kind": "logmel"})
    sidecar_path(path).write_text(json.dumps(side))
    hint = r"older audiomnist.*re-export .*audiomnist export RUN_DIR --onnx old.onnx"
    with pytest.raises(AudiomnistError, match=hint):
        Classifier.load(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "missing"),
        ("{not json", "not a readable JSON sidecar"),
        ('{"classes": ["0"]}', "no 'config'"),
        ('{"config": {}, "classes": []}', "'classes' must be"),
        ('{"config": {"colour": 1}, "classes": ["0"]}', "invalid 'config'"),
    ],
)
def test_bad_sidecar_is_a_clear_error(default_onnx, tmp_path, content, message):
    path = tmp_path / "m.onnx"
    shutil.copy(default_onnx[1], path)
    if content is not None:
        sidecar_path(path).write_text(content)
    with pytest.raises(AudiomnistError, match=message) as e:
        Classifier.load(path)
    assert str(sidecar_path(path)) in str(e.value)


def test_output_name_must_end_in_onnx(tmp_path):
    cfg = config_for("seed-cnn")
    with pytest.raises(AudiomnistError, match=r"must end in \.onnx"):
        export_onnx(models.create("seed-cnn", 10), cfg, CLASSES, tmp_path / "model.bin")


def test_checkpoint_backend_onnx_exports_once_into_the_cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("AUDIOMNIST_HOME", str(home))
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    ckpt = shutil.copy(PRETRAINED / "default.pt", ckpt_dir / "model.pt")
    first = Classifier.load(ckpt, backend="onnx")
    cached = sorted((home / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and sidecar_path(cached[0]).is_file()
    stamp = cached[0].stat().st_mtime_ns
    again = Classifier.load(ckpt, backend="onnx")
    assert cached[0].stat().st_mtime_ns == stamp
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["model.pt"]
    assert first.backend == "onnx" and isinstance(first.cfg, TrainConfig)
    waves = first.windows(generated_clips(8000, 3))
    np.testing.assert_allclose(first.probabilities(waves), again.probabilities(waves))
    np.testing.assert_allclose(first.probabilities(waves), Classifier.load(ckpt).probabilities(waves), atol=TOL)


def _predict_json(capsys, *argv) -> list[dict]:
    assert cli.main(["predict", *map(str, argv), "--format", "json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_export_then_predict_with_onnx_agrees_with_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUDIOMNIST_HOME", str(tmp_path / "home"))
    out = tmp_path / "out" / "model.onnx"
    assert cli.main(["export", "default", "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max probability diff" in printed and out.is_file() and sidecar_path(out).is_file()
    import soundfile as sf

    clips = tmp_path / "clips"
    clips.mkdir()
    for i, x in enumerate(generated_clips(8000, 4)):
        sf.write(clips / f"{i}_gen.wav", x, 8000)
    sample = sorted((PRETRAINED.parent / "sample" / "01").glob("*_0.flac"))
    for p in sample:
        shutil.copy(p, clips / p.name)
    want = _predict_json(capsys, clips, "--backend", "torch")
    for extra in (
        ["--model", out],
        ["--backend", "onnx"],
        ["--model", PRETRAINED / "default.pt", "--backend", "onnx"],
        ["--model", PRETRAINED / "default.onnx"],
    ):
        got = _predict_json(capsys, clips, *extra)
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert [g["path"] for g in got] == [w["path"] for w in want]
        assert max(abs(g["probabilities"][c] - w["probabilities"][c]) for g, w in zip(got, want) for c in CLASSES) < TOL


@pytest.mark.parametrize(
    "argv, message",
    [
        (["no-such-model", "--onnx", "x.onnx"], "no such run folder"),
        (["default", "--onnx", "x.txt"], "must end in .onnx"),
    ],
)
def test_cli_export_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_export_refuses_an_onnx_input(default_onnx, capsys):
    assert cli.main(["export", str(default_onnx[1]), "--onnx", "again.onnx"]) == 2
    assert "already an ONNX model" in capsys.readouterr().err
