"""StringRecognizer: the same digits from a checkpoint in torch and from its ONNX export; unusable audio; loading."""

import numpy as np
import pytest

from audiomnist.ctc import LEAD_PAD_S, TAIL_PAD_S
from audiomnist.errors import AudiomnistError
from audiomnist.export import string_parity
from audiomnist.recognizer import RescorerError, StringRecognizer, is_string_model
from audiomnist.string_model import load

from conftest import SR, tone_digit


def utterance(n: int) -> np.ndarray:
    return np.concatenate([tone_digit(d % 10, 1, d) for d in range(n)])


@pytest.mark.parametrize("which", ["string_model", "emb_string_model", "emb2_string_model"])
def test_onnx_export_matches_torch_on_any_length(which, request):
    ckpt, onnx = request.getfixturevalue(which)
    net, cfg = load(ckpt)
    waves = [utterance(1), utterance(4), utterance(9)[:-123]]
    assert string_parity(net, cfg, onnx, waves) <= 1e-4
    torch_rec, onnx_rec = StringRecognizer.load(ckpt), StringRecognizer.load(onnx)
    assert (torch_rec.backend, onnx_rec.backend) == ("torch", "onnx")
    assert torch_rec.frame_seconds == onnx_rec.frame_seconds == (0.08 if which == "emb_string_model" else 0.04)
    for w in waves:
        a, b = torch_rec.transcribe(w, SR), onnx_rec.transcribe(w, SR)
        assert a.digits == b.digits and set(a.digits) <= set("0123456789")
        assert [d.time for d in a.words] == sorted(d.time for d in a.words)
        assert all(0 <= d.confidence <= 1 and 0 <= d.time <= round(len(w) / SR, 3) for d in a.words)  # in w


@pytest.mark.parametrize("name", ["strings-emb", "strings"])
def test_the_shipped_string_models_run_on_onnx_runtime_unless_torch_is_asked_for(name):
    default, in_torch = StringRecognizer.load(name, rescore=None), StringRecognizer.load(name, "torch", rescore=None)
    assert (default.backend, default.path.name) == ("onnx", f"{name}.onnx")
    assert (in_torch.backend, in_torch.path.name) == ("torch", f"{name}.pt")
    w = utterance(5)
    assert np.abs(default.probabilities(w) - in_torch.probabilities(w)).max() <= 1e-4  # the same model


def test_recordings_get_the_encoder_string_model_and_the_live_stream_the_log_mel_one():
    from audiomnist.recognizer import SHIPPED, SHIPPED_LIVE

    assert StringRecognizer.load(rescore=None).path.name == f"{SHIPPED}.onnx" == "strings-emb.onnx"
    assert SHIPPED_LIVE == "strings" and StringRecognizer.load(SHIPPED_LIVE, rescore=None).frame_seconds == 0.04


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


def test_a_stream_segment_known_to_hold_speech_is_checked_only_for_bad_samples(string_model):
    rec = StringRecognizer.load(string_model[1], rescore=None)
    quiet = np.zeros(SR, np.float32)
    assert rec.transcribe(quiet, SR).reason == "no speech"
    assert rec.transcribe(quiet, SR, speech_known=True).reason is None  # the caller vouches for it
    assert rec.transcribe(np.full(SR, np.nan, np.float32), SR, speech_known=True).reason == "bad samples"
    w = utterance(3)
    assert rec.transcribe(w, SR, speech_known=True).digits == rec.transcribe(w, SR).digits


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


# ---- rescoring: each digit heard again by a single-digit model ------------------------------------------------------


class Ears:
    """A stand-in single-digit model at `rate` Hz that is sure of `digit` and records the clips it was given."""

    def __init__(self, rate: int, digit: int, classes=tuple("0123456789")):
        self.classes, self.digit, self.heard = list(classes), digit, []
        self.sample_rate = rate
        self.cfg = type("Cfg", (), {"audio": type("Audio", (), {"resample_quality": "HQ"})})

    def gated_probabilities(self, clips):
        self.heard += [len(c) for c in clips]
        p = np.full((len(clips), len(self.classes)), 0.01)
        p[:, self.digit] = 0.91
        return [None] * len(clips), p


def test_word_segments_run_from_the_previous_word_end_to_this_one():
    from audiomnist.ctc import FIRST_WORD_S, PAD_S, PEAK_TO_END_S, DigitHit, word_segments

    wave = np.arange(2 * SR, dtype=np.float32)
    hits = [DigitHit("1", 0.9, 20), DigitHit("2", 0.9, 30)]
    a, b = word_segments(hits, wave, SR, 0.04)
    end_a, end_b = 0.8 + PEAK_TO_END_S, 1.2 + PEAK_TO_END_S
    assert a[0] == int((end_a - FIRST_WORD_S - PAD_S) * SR) and a[-1] == int((end_a + PAD_S) * SR) - 1
    assert b[0] == int((end_a - PAD_S) * SR) and b[-1] == int((end_b + PAD_S) * SR) - 1
    (c,) = word_segments([DigitHit("3", 0.9, 49)], wave, SR, 0.04)  # past the end of the audio: cut at the end
    assert c[-1] == wave[-1]


def test_rescore_takes_the_digit_both_models_find_likeliest():
    from audiomnist.ctc import DigitHit, rescore

    probs = np.zeros((5, 11), np.float32)
    probs[2, [4, 9]] = [0.6, 0.4]  # the string model leans to "3", barely
    ears = np.full((1, 10), 0.0)
    ears[0, [3, 8]] = [0.1, 0.9]  # the single-digit model is sure of "8"
    (hit,) = rescore([DigitHit("3", 0.6, 2)], probs, ears)
    assert (hit.digit, hit.frame) == ("8", 2)
    assert hit.confidence == pytest.approx(np.sqrt(0.36) / (np.sqrt(0.36) + np.sqrt(0.06)))
    unheard = DigitHit("3", 0.6, 2)  # no speech in its stretch: the string model's answer stands
    assert rescore([unheard], probs, np.full((1, 10), np.nan)) == [unheard]


def test_rescoring_changes_digits_never_their_number_or_times(string_model):
    from audiomnist.ctc import decode, pad_edges, word_segments
    from audiomnist.recognizer import RESCORER

    plain = StringRecognizer.load(string_model[1], rescore=None, pace=None)  # decoded once, as the check below does
    ears = Ears(2 * SR, digit=7)  # another rate: each stretch is resampled to it
    heard = StringRecognizer(plain.model, plain.backend, plain.path, rescorer=ears, pace=None)
    w = utterance(6)
    a, b = plain.transcribe(w, SR), heard.transcribe(w, SR)
    assert b.digits and len(a.digits) == len(b.digits) and [d.time for d in a.words] == [d.time for d in b.words]
    padded, _ = pad_edges(w, SR)  # what transcribe decodes and cuts
    hits = decode(plain.probabilities(padded), min_gap=plain.model.timing.min_gap)
    want = [2 * len(s) for s in word_segments(hits, padded, SR, plain.frame_seconds)]
    assert ears.heard == pytest.approx(want, abs=2)
    assert plain.rescorer is None and StringRecognizer.load(string_model[1]).rescorer.classes[:10] == list("0123456789")
    assert RESCORER == "default"
    with pytest.raises(RescorerError, match="must know the ten digits"):
        StringRecognizer(plain.model, plain.backend, plain.path, rescorer=Ears(SR, 0, classes=("a", "b")))
    with pytest.raises(RescorerError, match="rescoring model: .*nowhere"):
        StringRecognizer.load(string_model[1], rescore="nowhere")


class Lookahead:
    """A stand-in string model that, like the real one, names a word only once LOOKAHEAD_S of audio follows its end:
    a "5" at the output frame where the loud part of its input ends, if the input goes on that far after it."""

    LOOKAHEAD_S = 0.15

    def __init__(self, real):
        self.info, self.timing, self.lengths = real.info, real.timing, []

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        self.lengths.append(len(wave))
        frame_s = self.timing.frame_s
        p = np.zeros((int(len(wave) / SR / frame_s), 11), np.float32)
        p[:, 0] = 1
        end_s = np.flatnonzero(np.abs(wave) > 0.05)[-1] / SR
        if end_s + self.LOOKAHEAD_S <= len(wave) / SR:
            p[int(end_s / frame_s) - 1] = np.eye(11)[6]
        return p


def test_a_word_that_ends_with_the_audio_is_heard_and_timed_in_the_audio_given(string_model):
    plain = StringRecognizer.load(string_model[1], rescore=None)
    rec = StringRecognizer(Lookahead(plain.model), plain.backend, plain.path)
    word = tone_digit(5, 1, 0)
    end = (np.flatnonzero(np.abs(word) > 0.05)[-1] + 1) / SR  # the word runs to the end of the audio
    assert len(word) / SR - end < Lookahead.LOOKAHEAD_S
    t = rec.transcribe(word, SR)
    assert t.digits == "5" and t.words[0].time == pytest.approx(end, abs=rec.frame_seconds + 1e-3)
    assert rec.transcribe(word, SR, ended=False).digits == ""  # an open segment: no pause is made up after it
    closed = rec.transcribe(word, SR, segment=True)  # a stream's closed segment: background after it only
    assert closed.digits == "5" and closed.words[0].time == pytest.approx(end, abs=rec.frame_seconds + 1e-3)
    rec.transcribe(word, SR, ended=False, segment=True)
    lead, tail = int(LEAD_PAD_S * SR), int(TAIL_PAD_S * SR)
    assert np.array(rec.model.lengths) - len(word) == pytest.approx([lead + tail, lead, tail, 0])
    later = rec.transcribe(np.concatenate([np.zeros(SR // 2, np.float32), word]), SR)
    assert later.words[0].time == pytest.approx(end + 0.5, abs=rec.frame_seconds + 1e-3)


class Chatter:
    """A stand-in string model that hears a digit every `every` output frames wherever its input is loud."""

    def __init__(self, real, every: int):
        self.info, self.timing, self.every, self.lengths = real.info, real.timing, every, []

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        self.lengths.append(len(wave))
        step = int(self.timing.frame_s * SR)
        loud = [np.abs(wave[i : i + step]).max() > 0.05 for i in range(0, len(wave) - step + 1, step)]
        p = np.eye(11, dtype=np.float32)[np.zeros(len(loud), int)]
        for k, i in enumerate(np.flatnonzero(loud)[:: self.every]):
            p[i] = np.eye(11)[1 + k % 10]
        return p


def test_a_quick_number_is_heard_again_slowed_to_a_steady_pace_and_timed_in_the_audio_given(string_model):
    from audiomnist.ctc import SLOWEST_TEMPO, STEADY_PACE

    plain = StringRecognizer.load(string_model[1], rescore=None)
    frame = plain.frame_seconds
    voice = 0.5 * np.sin(2 * np.pi * 150 * np.arange(2 * SR) / SR)  # 2 s of a steady vowel after 0.5 s of quiet
    word = np.concatenate([np.zeros(SR // 2), voice]).astype(np.float32)
    fast = StringRecognizer(Chatter(plain.model, 4), plain.backend, plain.path)  # 1 / (4 x 40 ms): 6.25 a second
    t = fast.transcribe(word, SR)
    assert 1 / (4 * frame) > STEADY_PACE and t.tempo == SLOWEST_TEMPO  # 3.5 / 6.25 is under the slowest tempo
    first, again = fast.model.lengths
    pads = first - len(word)
    assert again - pads == pytest.approx(len(word) / SLOWEST_TEMPO, abs=2)
    assert len(t.digits) > 10 and 0.5 - 2 * frame <= t.words[0].time and t.words[-1].time <= len(word) / SR
    assert t.to_dict()["tempo"] == SLOWEST_TEMPO
    for rec, kw in [(fast, {"slow": False}), (fast, {"ended": False}), (StringRecognizer(
            Chatter(plain.model, 4), plain.backend, plain.path, pace=None), {})]:  # fmt: skip
        rec.model.lengths.clear()
        assert rec.transcribe(word, SR, **kw).tempo == 1.0 and len(rec.model.lengths) == 1
    steady = StringRecognizer(Chatter(plain.model, 8), plain.backend, plain.path)  # 3.1 a second: left as said
    assert steady.transcribe(word, SR).tempo == 1.0 and len(steady.model.lengths) == 1
    assert fast.tempo_for([]) == 1.0
    with pytest.raises(AudiomnistError, match="pace must be a positive number"):
        StringRecognizer.load(string_model[1], rescore=None, pace=0)
