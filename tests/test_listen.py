"""`audiomnist listen` without a microphone: a fake sounddevice plays FSDD digits; PortAudio's absence is reported."""

from __future__ import annotations

import builtins
import io
import sys
import threading

import numpy as np
import soundfile as sf
import soxr

from audiomnist import cli, listen
from audiomnist.infer import Prediction

MIC_RATE = 48000


def speech(fsdd_dir, digits: list[int], pause: float = 0.5) -> np.ndarray:
    """FSDD clips by one speaker with pauses and faint noise, resampled to the microphone's 48 kHz."""
    rng = np.random.default_rng(0)
    parts = [np.zeros(round(pause * 8000), np.float32)]
    for d in digits:
        parts += [
            sf.read(fsdd_dir / f"{d}_jackson_5.wav", dtype="float32")[0],
            np.zeros(round(pause * 8000), np.float32),
        ]
    x = np.concatenate(parts)
    x += rng.normal(0, 3e-4, len(x)).astype(np.float32)
    return soxr.resample(x, 8000, MIC_RATE)


class FakeSoundDevice:
    """The parts of sounddevice that listen uses; the 'microphone' plays `audio` in 100 ms callbacks."""

    class PortAudioError(Exception):
        pass

    def __init__(self, audio: np.ndarray):
        self.audio = audio.astype(np.float32)
        self.done = threading.Event()
        self.recordings = 0

    def query_devices(self, device=None, kind=None):
        info = {"name": "fake microphone", "default_samplerate": float(MIC_RATE), "max_input_channels": 1}
        return info if kind else "  0 fake microphone (1 in, 0 out)"

    def rec(self, frames, samplerate, channels, dtype, device=None):
        assert samplerate == MIC_RATE and channels == 1
        self.recordings += 1
        x = np.zeros((frames, 1), np.float32)
        n = min(frames, len(self.audio))
        x[:n, 0] = self.audio[:n]
        return x

    def wait(self):
        pass

    def InputStream(self, samplerate, blocksize, device, channels, dtype, callback):
        fake = self

        class Stream:
            def __enter__(self):
                def play():
                    for i in range(0, len(fake.audio), blocksize):
                        block = fake.audio[i : i + blocksize, None]
                        callback(block, len(block), None, None)
                    fake.done.set()

                self.thread = threading.Thread(target=play)
                self.thread.start()
                return self

            def __exit__(self, *exc):
                self.thread.join()

        return Stream()


class QuitWhenDone:
    """stdin that types 'q' once the fake microphone has played everything."""

    def __init__(self, done: threading.Event):
        self.done = done

    def __iter__(self):
        self.done.wait(30)
        yield "q\n"


def test_missing_portaudio_names_the_library_and_the_way_out(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    for argv in (["listen"], ["listen", "--continuous"], ["listen", "--list-devices"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the microphone needs the PortAudio library")
        assert "libportaudio2" in err and "--input FILE" in err and "Traceback" not in err


class FakeClassifier:
    sample_rate = 8000

    def __init__(self):
        self.seen: list[tuple[int, int]] = []

    def predict(self, x, sample_rate):
        self.seen.append((len(x), sample_rate))
        return Prediction("7", 0.9, {"7": 0.9})


def test_push_to_talk_records_on_enter_and_stops_on_q():
    clf, out = FakeClassifier(), io.StringIO()
    record = lambda seconds: np.zeros(round(seconds * 44100), np.float32)  # noqa: E731
    heard = listen.push_to_talk(clf, record, 44100, seconds=2.0, lines=["\n", "\n", "q\n", "\n"], out=out)
    assert [p.label for p in heard] == ["7", "7"]
    assert clf.seen == [(88200, 44100)] * 2
    assert out.getvalue().count("7  (p=0.90") == 2
    assert len(listen.push_to_talk(clf, record, 44100, lines=["\n"], out=io.StringIO())) == 1  # end of input quits too


def test_push_to_talk_cli_hears_the_digit(fsdd_dir, monkeypatch, capsys):
    fake = FakeSoundDevice(speech(fsdd_dir, [7], pause=0.3))
    monkeypatch.setattr(listen, "load_sounddevice", lambda: fake)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n\nq\n"))
    assert cli.main(["listen", "--seconds", "1.5"]) == 0
    out = capsys.readouterr().out
    assert fake.recordings == 2
    assert out.count("7  (p=") == 2, out


def test_continuous_cli_prints_the_running_digit_string(fsdd_dir, monkeypatch, capsys):
    fake = FakeSoundDevice(speech(fsdd_dir, [2, 0, 3, 8]))
    monkeypatch.setattr(listen, "load_sounddevice", lambda: fake)
    monkeypatch.setattr(sys, "stdin", QuitWhenDone(fake.done))
    assert cli.main(["listen", "--continuous"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[-1] == "2038", captured.out
    assert [line.split()[-1] for line in lines[:-1]] == ["2", "20", "203", "2038"]
    assert "fake microphone at 48000 Hz" in captured.err


def test_bad_device_is_a_clear_error(monkeypatch, capsys):
    fake = FakeSoundDevice(np.zeros(10, np.float32))

    def no_device(device=None, kind=None):
        raise ValueError(f"No input device matching {device!r}")

    fake.query_devices = no_device
    monkeypatch.setattr(listen, "load_sounddevice", lambda: fake)
    assert cli.main(["listen", "--device", "usb mic"]) == 2
    err = capsys.readouterr().err
    assert "no usable input device usb mic" in err and "--list-devices" in err


def test_seconds_must_be_positive(capsys):
    assert cli.main(["listen", "--seconds", "0", "--input", "x.wav"]) == 2
    assert "--seconds must be positive" in capsys.readouterr().err


class NoDigitClassifier(FakeClassifier):
    def predict(self, x, sample_rate):
        self.seen.append((len(x), sample_rate))
        return Prediction(None, 0.0, {}, reason="no speech")


def test_push_to_talk_says_no_digit_heard_and_keeps_it_out():
    out = io.StringIO()
    record = lambda seconds: np.zeros(round(seconds * 8000), np.float32)  # noqa: E731
    heard = listen.push_to_talk(NoDigitClassifier(), record, 8000, lines=["\n", "q\n"], out=out)
    assert heard == [] and "no digit heard (no speech" in out.getvalue()


def test_continuous_stream_skips_a_segment_without_a_digit():
    from audiomnist.stream import Detection

    kept: list[str] = []
    out = io.StringIO()
    detections = [
        Detection(0.1, 0.4, Prediction("4", 0.9, {"4": 0.9})),
        Detection(0.6, 0.62, Prediction(None, 0.0, {}, reason="too short")),
        Detection(1.0, 1.4, Prediction("2", 0.8, {"2": 0.8})),
    ]
    listen.print_stream(detections, kept, out=out)
    assert kept == ["4", "2"] and "skipped: too short" in out.getvalue()
    assert out.getvalue().splitlines()[-1].endswith("42")


def test_input_reads_a_recording_with_the_shipped_encoder_string_model(fsdd_dir, tmp_path, monkeypatch, capsys):
    from audiomnist.recognizer import StringRecognizer

    path = tmp_path / "number.wav"
    sf.write(path, speech(fsdd_dir, [4, 1, 5, 9], pause=0.1), MIC_RATE)
    loaded, real = [], StringRecognizer.load.__func__

    def spy(cls, spec=None, *args, **kw):
        rec = real(cls, spec, *args, **kw)
        loaded.append(rec.path.name)
        return rec

    monkeypatch.setattr(StringRecognizer, "load", classmethod(spy))
    assert cli.main(["listen", "--input", str(path)]) == 0
    assert loaded == ["strings-emb.onnx"]
    assert capsys.readouterr().out.strip().splitlines()[-1] == "4159"


def test_input_slows_a_quick_number_unless_told_not_to(fsdd_dir, tmp_path, monkeypatch, capsys):
    from audiomnist.ctc import STEADY_PACE
    from audiomnist.recognizer import StringRecognizer

    path = tmp_path / "number.wav"
    sf.write(path, speech(fsdd_dir, [4, 1, 5, 9], pause=0.1), MIC_RATE)
    paces, real = [], StringRecognizer.load.__func__

    def spy(cls, *args, **kw):
        rec = real(cls, *args, **kw)
        paces.append(rec.pace)
        return rec

    monkeypatch.setattr(StringRecognizer, "load", classmethod(spy))
    for pace in ([], ["--steady-pace", "0"]):
        assert cli.main(["listen", "--input", str(path), *pace]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == "4159"
    assert paces == [STEADY_PACE, None]
    for bad in ("-1", "nan"):
        assert cli.main(["listen", "--input", str(path), "--steady-pace", bad]) != 0
        assert "--steady-pace must be a number of digits a second" in capsys.readouterr().err
