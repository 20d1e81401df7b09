"""StringRecognizer: the same digits from a checkpoint in torch and from its ONNX export; unusable audio; loading."""

import numpy as np
import pytest

from audiomnist.errors import AudiomnistError
from audiomnist.export import string_parity
from audiomnist.recognizer import StringRecognizer, is_string_model
from audiomnist.string_model import load

from conftest import SR, tone_digit


def utterance(n: int) -> np.ndarray:
    return np.concatenate([tone_digit(d % 10, 1, d) for d in range(n)])


def test_onnx_export_matches_torch_on_any_length(string_model):
    ckpt, onnx = string_model
    net, cfg = load(ckpt)
    waves = [utterance(1), utterance(4), utterance(9)[:-123]]
    assert string_parity(net, cfg, onnx, waves) <= 1e-4
    torch_rec, onnx_rec = StringRecognizer.load(ckpt), StringRecognizer.load(onnx)
    assert (torch_rec.backend, onnx_rec.backend) == ("torch", "onnx")
    for w in waves:
        a, b = torch_rec.transcribe(w, SR), onnx_rec.transcribe(w, SR)
        assert a.digits == b.digits and set(a.digits) <= set("0123456789")
        assert [d.time for d in a.words] == sorted(d.time for d in a.words)
        assert all(0 <= d.confidence <= 1 and 0 < d.time <= len(w) / SR + 0.05 for d in a.words)


def test_other_rates_and_channels_are_accepted(string_model):
    rec = StringRecognizer.load(string_model[1])
    w = utterance(3)
    stereo = np.stack([w, w], axis=1)
    assert rec.transcribe(stereo, SR).digits == rec.transcribe(w, SR).digits
    up = np.repeat(w, 2)  # 16 kHz, roughly the same sound
    assert rec.transcribe(up, 2 * SR).reason is None


@pytest.mark.parametrize(
    ("wave", "reason"),
    [(np.zeros(SR, np.float32), "no speech"), (np.ones(10, np.float32) * 0.1, "too short"),
     (np.full(SR, np.nan, np.float32), "bad samples"), (np.zeros(0, np.float32), "too short")],
)  # fmt: skip
def test_unusable_audio_gets_no_digits_and_a_reason(string_model, wave, reason):
    t = StringRecognizer.load(string_model[1]).transcribe(wave, SR)
    assert (t.digits, t.words, t.reason) == ("", [], reason)


def test_transcribe_file_and_to_dict(string_model, tmp_path):
    import soundfile as sf

    path = tmp_path / "number.wav"
    sf.write(path, utterance(5), SR)
    t = StringRecognizer.load(string_model[1]).transcribe_file(path)
    d = t.to_dict()
    assert d["path"] == str(path) and d["reason"] is None and isinstance(d["words"], list)


def test_single_digit_models_are_told_apart(string_model):
    ckpt, onnx = string_model
    assert is_string_model(ckpt.parent) and is_string_model(ckpt) and is_string_model(onnx)
    assert not is_string_model("default") and not is_string_model(None)
    with pytest.raises(AudiomnistError, match="single-digit model"):
        StringRecognizer.load("default", backend="onnx")
