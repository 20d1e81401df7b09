import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from audiomnist import decode
from audiomnist.decode import FfmpegError, ffmpeg_decode, unreadable_detail

from conftest import FAKE_FFMPEG_RATE, fake_encoded


def test_decodes_a_file_and_bytes(fake_ffmpeg, tmp_path):
    x = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    path = tmp_path / "memo.m4a"
    path.write_bytes(fake_encoded(x))
    for source in (path, str(path), fake_encoded(x)):
        y, sr = ffmpeg_decode(source)
        assert sr == FAKE_FFMPEG_RATE and y.shape == (800, 2) and y.dtype == np.float32
        np.testing.assert_array_equal(y[:, 0], x)


def test_max_seconds_reaches_ffmpeg(fake_ffmpeg):
    y, _ = ffmpeg_decode(fake_encoded(np.zeros(FAKE_FFMPEG_RATE)), max_seconds=0.25)
    assert len(y) == FAKE_FFMPEG_RATE // 4


def test_its_message_without_the_path(fake_ffmpeg, tmp_path):
    path = tmp_path / "junk.m4a"
    path.write_bytes(b"not audio")
    with pytest.raises(FfmpegError) as e:
        ffmpeg_decode(path)
    assert str(e.value) == "ffmpeg: Invalid data found when processing input"


def test_a_name_is_never_a_protocol(fake_ffmpeg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "concat:x.m4a").write_bytes(fake_encoded(np.ones(10)))
    assert ffmpeg_decode("concat:x.m4a")[0].shape == (10, 2)


def test_not_installed(no_ffmpeg, tmp_path):
    with pytest.raises(FfmpegError, match="not installed") as e:
        ffmpeg_decode(b"FAKE")
    assert unreadable_detail(tmp_path / "a.m4a", e.value) == "; install ffmpeg to read .m4a files"
    assert unreadable_detail(tmp_path / "a.wav", e.value) == ""  # a broken WAV is broken, whatever is installed


def test_detail_is_ffmpegs_message_where_installed(fake_ffmpeg, tmp_path):
    assert unreadable_detail(tmp_path / "a.m4a", FfmpegError("ffmpeg: oops")) == "; ffmpeg: oops"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_real_ffmpeg_reads_aac(tmp_path):
    sr = 16000
    t = np.arange(sr // 2) / sr
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), sr)
    subprocess.run([decode.FFMPEG, "-v", "error", "-i", str(tmp_path / "tone.wav"), "-c:a", "aac",
                    str(tmp_path / "tone.m4a")], check=True)  # fmt: skip
    y, rate = ffmpeg_decode(tmp_path / "tone.m4a")
    assert rate == sr and y.shape[1] == 1 and abs(len(y) - len(t)) < 2048  # AAC pads a frame or two
    spectrum = np.abs(np.fft.rfft(y[:, 0]))
    assert abs(np.argmax(spectrum) * sr / len(y) - 440) < 5
