"""The "no digit" answers a network gives itself: the trained "none" class (--negative folders), temperature
scaling fitted on the validation speakers, and --min-prob."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from audiomnist import cli, listen
from audiomnist.augment import AugmentConfig
from audiomnist.checkpoint import load_calibrated, load_checkpoint, load_trained
from audiomnist.dataset import NONE, load_data, make_split
from audiomnist.errors import AudiomnistError
from audiomnist.evaluate import acceptance, expected_calibration_error, fit_temperature, nll, with_temperature
from audiomnist.export import export_onnx
from audiomnist.infer import LOW_CONFIDENCE, NOT_A_DIGIT, Classifier
from audiomnist.onnx_model import read_sidecar, sidecar_path
from audiomnist.runconfig import TrainConfig
from audiomnist.serve import create_app
from audiomnist.stream import transcribe_file

from conftest import FAST_TRAIN, SR, reject_checkpoint, tone_digit, write_negatives, write_tone_set

DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("reject")
    return write_tone_set(base / "digits", speakers=5, reps=1), write_negatives(base / "negatives")


def test_negative_clips_are_class_none_and_split_by_speaker(folders):
    digits, negatives = folders
    cfg = TrainConfig(data=(str(digits),), negatives=(str(negatives),), val_frac=0.2, test_frac=0.2)
    data = load_data(cfg, progress=False)
    assert data.classes == DIGITS + [NONE]
    is_negative = data.catalog.table["path"].str.startswith(str(negatives)).to_numpy()
    assert (data.labels[is_negative] == 10).all() and is_negative.sum() == 20
    assert (data.labels[~is_negative] < 10).all()
    split = make_split(cfg, data)
    spk = data.speakers
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert not set(spk[getattr(split, a)]) & set(spk[getattr(split, b)])
    # Stratified by folder: both the digit speakers and the negative speakers have unseen test speakers.
    test_negative = is_negative[split.test]
    assert test_negative.any() and (~test_negative).any()


def test_negatives_need_the_digit_target(folders):
    digits, negatives = folders
    with pytest.raises(AudiomnistError, match="--target digit"):
        load_data(TrainConfig(data=(str(digits),), negatives=(str(negatives),), target="gender"), progress=False)
    with pytest.raises(AudiomnistError, match="--negative"):
        TrainConfig(data=(str(digits),), augment=AugmentConfig(reverse_none=0.2))


class Fixed:
    """A pipeline answering softmax(logits / T) for every window, as TorchPipeline and the ONNX graph do."""

    def __init__(self, logits, temperature: float = 1.0):
        self.logits, self.temperature = np.asarray(logits, dtype=np.float64), temperature

    def probabilities(self, windows):
        z = self.logits / self.temperature
        p = np.exp(z - z.max())
        return np.tile(p / p.sum(), (len(windows), 1))


def classifier(logits, temperature: float = 1.0, **kw) -> Classifier:
    return Classifier(Fixed(logits, temperature), TrainConfig(), DIGITS + [NONE], "torch", **kw)


def test_classifier_maps_none_to_no_digit_with_its_reason():
    logits = [0.0] * 10 + [5.0]
    p = classifier(logits).predict(tone_digit(3, 1, 0), SR)
    assert p.label is None and p.reason == NOT_A_DIGIT
    assert p.probability == pytest.approx(p.probabilities[NONE]) and p.probability > 0.9


def test_min_prob_gives_low_confidence_and_temperature_softens():
    logits = [2.0, 1.0] + [0.0] * 9
    sure = classifier(logits).predict(tone_digit(0, 1, 0), SR)
    assert sure.label == "0" and sure.reason is None
    low = classifier(logits, min_prob=sure.probability + 0.01).predict(tone_digit(0, 1, 0), SR)
    assert low.label is None and low.reason == LOW_CONFIDENCE
    assert low.probabilities == pytest.approx(sure.probabilities)
    softer = classifier(logits, temperature=3.0).predict(tone_digit(0, 1, 0), SR)
    assert softer.label == "0" and softer.probability < sure.probability
    assert classifier(logits, temperature=3.0).temperature == 3.0
    with pytest.raises(AudiomnistError, match="min_prob"):
        classifier(logits, min_prob=1.5)


def test_temperature_scaling_lowers_nll_and_ece_on_an_overconfident_toy_set():
    rng = np.random.default_rng(0)
    n, k = 2000, 10
    logits = rng.normal(0, 1.5, (n, k))
    y = np.array([rng.choice(k, p=np.exp(r) / np.exp(r).sum()) for r in logits])  # calibrated at T = 1
    over = with_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1 / 4)  # 4x too sure
    t = fit_temperature(over, y)
    assert 3.0 < t < 5.5
    fixed = with_temperature(over, t)
    assert nll(fixed, y) < nll(over, y) - 0.1
    assert expected_calibration_error(fixed, y) < expected_calibration_error(over, y) / 2
    assert (fixed.argmax(1) == over.argmax(1)).all()  # calibration never changes the answer
    assert fit_temperature(np.zeros((0, 0)), np.zeros(0, int)) == 1.0


def test_weighted_temperature_counts_rows_as_often_as_their_weight():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (600, 5))
    y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in logits])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sure, unsure = with_temperature(probs[:300], 1 / 3), with_temperature(probs[300:], 3)  # 3x too sure / unsure
    both, w = np.concatenate([sure, unsure]), np.r_[np.full(300, 3.0), np.ones(300)]
    repeated = np.concatenate([sure, sure, sure, unsure])
    y_repeated = np.concatenate([y[:300], y[:300], y[:300], y[300:]])
    assert fit_temperature(both, y, w) == pytest.approx(fit_temperature(repeated, y_repeated), rel=1e-4)
    # the heavier half pulls T its way: up where the overconfident rows weigh more, down where the underconfident do
    assert fit_temperature(both, y, w) > fit_temperature(both, y) + 0.2 > fit_temperature(both, y, w[::-1]) + 0.4


def test_acceptance_counts_none_and_min_prob():
    classes = DIGITS + [NONE]
    probs = np.full((4, 11), 0.01)
    probs[0, 3], probs[1, 10], probs[2, 5], probs[3, 4] = 0.9, 0.9, 0.5, 0.9
    y = np.array([3, 10, 5, 10])
    a = acceptance(y, probs, classes, 0.6)
    assert a["digits_accepted"] == 0.5 and a["accuracy_on_accepted"] == 1.0 and a["none_accepted_as_digit"] == 0.5


_checkpoint = reject_checkpoint


def test_temperature_is_stored_and_old_checkpoints_load_with_one(tmp_path):
    old = _checkpoint(tmp_path / "old.pt")
    assert load_calibrated(old)[3] == (1.0, None) and len(load_trained(old)) == 3
    assert Classifier.load(old).temperature == 1.0
    new = _checkpoint(tmp_path / "new.pt", temperature=2.5)
    assert load_calibrated(new)[3].temperature == 2.5 and Classifier.load(new).temperature == 2.5
    with pytest.raises(AudiomnistError, match="temperature"):
        load_calibrated(_checkpoint(tmp_path / "bad.pt", temperature=-1.0))


def test_predict_cli_min_prob(tmp_path, capsys):
    model = _checkpoint(tmp_path / "untrained.pt")  # an untrained net is unsure of everything
    sf.write(tmp_path / "clip.wav", tone_digit(4, 1, 0), SR, subtype="PCM_16")
    assert (
        cli.main(
            [
                "predict",
                str(tmp_path / "clip.wav"),
                "--model",
                str(model),
                "--min-prob",
                "0.9",
                "--format",
                "json",
                "--no-progress",
            ]
        )
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["digit"] is None and row["reason"] == LOW_CONFIDENCE and row["probability"] < 0.9


def test_training_with_negatives_stores_a_fitted_temperature(folders, tmp_path, one_thread):
    digits, negatives = folders
    argv = [
        "train",
        "--data",
        str(digits),
        "--negative",
        str(negatives),
        "--runs",
        str(tmp_path),
        "--device",
        "cpu",
        "--val-frac",
        "0.2",
        "--test-frac",
        "0.2",
        "--augment.reverse-none",
        "0.3",
        *FAST_TRAIN,
    ]
    assert cli.main(argv) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["augment"]["reverse_none"] == 0.3
    state = load_checkpoint(run / "best.pt")
    assert state["classes"] == DIGITS + [NONE] and 0 < state["temperature"] != 1.0
    test = json.loads((run / "report" / "metrics.json").read_text())["calibration"]
    assert test["temperature"] == state["temperature"] and 0 <= test["ece_calibrated"] <= 1
    assert {"digits_accepted", "none_accepted_as_digit"} <= set(test["acceptance"][0])


def test_onnx_sidecar_carries_the_temperature(tmp_path):
    net, cfg, classes, cal = load_calibrated(_checkpoint(tmp_path / "new.pt", temperature=2.5))
    out = export_onnx(net, cfg, classes, tmp_path / "m.onnx", *cal)
    assert read_sidecar(out)["temperature"] == 2.5 and Classifier.load(out).temperature == 2.5
    side = json.loads(sidecar_path(out).read_text())
    del side["temperature"]  # a sidecar written before calibration existed
    sidecar_path(out).write_text(json.dumps(side))
    assert Classifier.load(out).temperature == 1.0
    side["temperature"] = "hot"
    sidecar_path(out).write_text(json.dumps(side))
    with pytest.raises(AudiomnistError, match="temperature"):
        Classifier.load(out)


@pytest.mark.parametrize("none_bias", [0.0, 40.0])
def test_torch_free_path_applies_temperature_and_none_exactly_like_torch(tmp_path, none_bias):
    """The .onnx file (graph + sidecar, no torch at inference), the checkpoint's cached export and torch answer the
    same calibrated probabilities, labels and reasons; with a dominant none logit all say 'not a digit'."""
    ckpt = _checkpoint(tmp_path / "m.pt", none_bias=none_bias, temperature=2.5)
    net, cfg, classes, cal = load_calibrated(ckpt)
    onnx = export_onnx(net, cfg, classes, tmp_path / "m.onnx", *cal)
    clips = [tone_digit(d, 1, 0) for d in range(4)]
    answers = [
        c.predict_batch(clips, SR)
        for c in (Classifier.load(ckpt), Classifier.load(ckpt, backend="onnx"), Classifier.load(onnx))
    ]
    uncalibrated = Classifier.load(_checkpoint(tmp_path / "raw.pt", none_bias=none_bias)).predict_batch(clips, SR)
    for want, *got in zip(answers[0], answers[1], answers[2]):
        for g in got:
            assert (g.label, g.reason) == (want.label, want.reason)
            assert max(abs(g.probabilities[c] - want.probabilities[c]) for c in classes) <= 1e-4
    for want, raw in zip(answers[0], uncalibrated):  # the temperature is applied: softer than T = 1
        assert want.probability <= raw.probability + 1e-6
    if none_bias:
        assert all(p.label is None and p.reason == NOT_A_DIGIT for a in answers for p in a)


@pytest.fixture(scope="module")
def none_model(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("none") / "none.pt", none_bias=40.0, temperature=1.5)


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_predict_cli_says_not_a_digit(none_model, tmp_path, capsys, fmt):
    sf.write(tmp_path / "4_x_0.wav", tone_digit(4, 1, 0), SR, subtype="PCM_16")
    argv = ["predict", str(tmp_path / "4_x_0.wav"), "--model", str(none_model), "--format", fmt, "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        (row,) = json.loads(out)
        assert row["digit"] is None and row["label"] is None and row["reason"] == NOT_A_DIGIT
    elif fmt == "csv":
        row = out.splitlines()[1].split(",")
        assert row[1] == "-" and row[-1] == NOT_A_DIGIT
    else:
        assert f"   -  {NOT_A_DIGIT}" in out


def test_serve_answers_200_with_no_digit(none_model):
    clf = Classifier.load(none_model, min_prob=0.2)
    wav = io.BytesIO()
    sf.write(wav, tone_digit(2, 1, 0), SR, format="WAV", subtype="PCM_16")
    r = TestClient(create_app(clf)).post("/predict", files={"file": ("2.wav", wav.getvalue(), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digit"] is None and body["reason"] == NOT_A_DIGIT and body["probabilities"][NONE] > 0.99


def test_listen_skips_not_a_digit(none_model):
    clf = Classifier.load(none_model)
    x = np.concatenate([np.zeros(SR // 2, np.float32), tone_digit(3, 1, 0), np.zeros(SR, np.float32)])
    path = none_model.parent / "3.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    kept: list[str] = []
    out = io.StringIO()
    listen.print_stream(transcribe_file(path, clf), kept, out=out)
    assert kept == [] and f"skipped: {NOT_A_DIGIT}" in out.getvalue()


def test_none_threshold_answers_the_best_digit_until_none_is_likely_enough():
    logits = [1.0, 0.5] + [0.0] * 8 + [1.5]  # none the most likely, but under 0.5
    clip = tone_digit(0, 1, 0)
    assert classifier(logits).predict(clip, SR).reason == NOT_A_DIGIT
    kept = classifier(logits, none_threshold=0.5).predict(clip, SR)
    assert kept.label == "0" and kept.reason is None and kept.probability == pytest.approx(kept.probabilities["0"])
    assert classifier(logits, none_threshold=0.2).predict(clip, SR).reason == NOT_A_DIGIT
    low = classifier(logits, none_threshold=0.5, min_prob=0.5).predict(clip, SR)
    assert low.label is None and low.reason == LOW_CONFIDENCE
    with pytest.raises(AudiomnistError, match="none_threshold"):
        classifier(logits, none_threshold=0.0)


def test_predict_cli_none_threshold(tmp_path, capsys):
    model = reject_checkpoint(tmp_path / "m.pt", none_bias=3.0)  # none most likely, p(none) about 0.7
    sf.write(tmp_path / "clip.wav", tone_digit(4, 1, 0), SR, subtype="PCM_16")
    argv = ["predict", str(tmp_path / "clip.wav"), "--model", str(model), "--format", "json", "--no-progress"]
    rows = []
    for extra in ([], ["--none-threshold", "0.95"]):
        assert cli.main(argv + extra) == 0
        rows += json.loads(capsys.readouterr().out)
    assert rows[0]["digit"] is None and rows[0]["reason"] == NOT_A_DIGIT and 0.5 < rows[0]["probability"] < 0.95
    assert rows[1]["digit"] in DIGITS and rows[1]["reason"] is None


def test_a_stored_none_threshold_is_every_backends_default_and_the_flag_overrides_it(tmp_path):
    """The shipped model stores its p(none) threshold: torch, the checkpoint's cached export and the .onnx file
    (its sidecar) all apply it, and an explicit none_threshold wins over it."""
    clip = tone_digit(4, 1, 0)
    ckpt = reject_checkpoint(tmp_path / "m.pt", none_bias=3.0, none_threshold=0.95)  # p(none) about 0.7
    net, cfg, classes, cal = load_calibrated(ckpt)
    assert cal.none_threshold == 0.95
    onnx = export_onnx(net, cfg, classes, tmp_path / "m.onnx", *cal)
    assert read_sidecar(onnx)["none_threshold"] == 0.95
    for load in (lambda **kw: Classifier.load(ckpt, **kw), lambda **kw: Classifier.load(ckpt, backend="onnx", **kw),
                 lambda **kw: Classifier.load(onnx, **kw)):  # fmt: skip
        kept, overridden = load().predict(clip, SR), load(none_threshold=0.5).predict(clip, SR)
        assert kept.label in DIGITS and kept.reason is None
        assert overridden.label is None and overridden.reason == NOT_A_DIGIT
    assert Classifier.load(reject_checkpoint(tmp_path / "plain.pt", none_bias=3.0)).none_threshold is None
    with pytest.raises(AudiomnistError, match="none_threshold"):
        load_calibrated(reject_checkpoint(tmp_path / "bad.pt", none_threshold=1.5))
    side = json.loads(sidecar_path(onnx).read_text())
    side["none_threshold"] = "high"
    sidecar_path(onnx).write_text(json.dumps(side))
    with pytest.raises(AudiomnistError, match="none_threshold"):
        Classifier.load(onnx)


def test_evaluate_other_data_of_a_weighted_run_with_negatives(tmp_path):
    """A run's --data-weight belongs to its own folders: evaluating other folders (and --negative ones) drops it."""
    from audiomnist.runconfig import with_data

    cfg = TrainConfig(data=("a", "b"), data_weights=(4.0, 1.0), negatives=("n",))
    assert with_data(cfg, ["c"]).data_weights == ()
