"""speech_embedding: the frozen pretrained front end (shapes, per-clip invariances, the one-pass encoder, the 2x
upsampler, its weights file) and, where PyPI answers, the converter against the original ONNX graphs."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from audiomnist.errors import AudiomnistError
from audiomnist.features import FeatureConfig, build_frontend
from audiomnist.speech_embedding import (
    DIM,
    STEP_FRAMES,
    WEIGHTS,
    WINDOW_FRAMES,
    SpeechEmbedding,
    load_weights,
    num_embeddings,
)

from conftest import REPO


@pytest.fixture(scope="module")
def front() -> SpeechEmbedding:
    return SpeechEmbedding(8000)


def voiced(n: int, seed: int, sr: int = 8000) -> torch.Tensor:
    """A vowel-like harmonic sound with a moving pitch under an envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.exp(-(((t - t[-1] / 2) / 0.25) ** 2))
    return torch.from_numpy((x + 0.003 * rng.standard_normal(n)).astype(np.float32))


def test_a_window_becomes_one_vector_every_80_ms(front):
    x = torch.stack([voiced(12800, s) for s in range(3)])  # 1.6 s at 8 kHz
    with torch.no_grad():
        out = front(x)
    assert out.shape == (3, num_embeddings(12800, 8000), DIM) == (3, 11, 96)
    assert torch.isfinite(out).all() and out.std() > 0.1
    assert num_embeddings(16000, 16000) == 1 + (1 + (16000 - 512) // 160 - WINDOW_FRAMES) // STEP_FRAMES
    assert build_frontend(FeatureConfig(kind="speech_embedding"), 8000).sample_rate == 8000


def test_the_answer_depends_on_neither_gain_nor_batch(front):
    x = torch.stack([voiced(12800, s) for s in range(4)])
    with torch.no_grad():
        together = front(x)
        alone = front(x[2:3])
        quieter = front(x * 0.01)
    assert (together[2:3] - alone).abs().max() < 1e-4
    assert (together - quieter).abs().max() < 1e-3  # each clip is brought to one peak


def test_one_pass_over_the_clip_equals_each_window_alone(front):
    """The encoder's time stride is the step between vectors: one pass gives every 76-frame window's vector."""
    x = torch.stack([voiced(12800, s) for s in range(2)])
    with torch.no_grad():
        x16 = front.to_16k(x * 3000)
        mel = torch.nn.functional.pad(front.log_mel(x16), (1, 1))[:, None]
        whole = front.encoder(mel)[..., 0]
        starts = range(0, mel.shape[2] - WINDOW_FRAMES + 1, STEP_FRAMES)
        each = torch.stack([front.encoder(mel[:, :, s : s + WINDOW_FRAMES])[:, :, 0, 0] for s in starts], 2)
    assert whole.shape == each.shape and (whole - each).abs().max() < 1e-4


def test_the_upsampler_keeps_the_band_and_removes_the_image(front):
    """8 kHz -> 16 kHz: a 1 kHz tone stays, its 7 kHz image is at least 60 dB down."""
    t = torch.arange(8000) / 8000
    x = torch.sin(2 * torch.pi * 1000 * t)
    with torch.no_grad():
        y = front.to_16k(x[None])[0]
    spec = torch.fft.rfft(y[1000:-1000] * torch.hann_window(14000)).abs()
    hz = torch.fft.rfftfreq(14000, 1 / 16000)
    tone, image = spec[(hz - 1000).abs() < 20].max(), spec[(hz - 7000).abs() < 20].max()
    assert 20 * torch.log10(image / tone) < -60
    assert abs(y[1000:-1000].abs().max() - 1) < 0.01  # unity gain in the band


def test_it_is_frozen(front):
    assert not any(p.requires_grad for p in front.parameters())
    front.train()
    assert not front.training
    x = voiced(12800, 0)[None].requires_grad_(False)
    assert not front(x).requires_grad


def test_bad_rates_short_clips_and_bad_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(AudiomnistError, match="8 or 16 kHz"):
        SpeechEmbedding(22050)
    with pytest.raises(AudiomnistError, match="at least 0.7"):
        SpeechEmbedding(8000)(torch.zeros(1, 4000))
    with pytest.raises(AudiomnistError, match="missing"):
        load_weights(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AudiomnistError, match="not a readable"):
        load_weights(bad)


@pytest.mark.network
@pytest.mark.slow
def test_the_converter_remakes_the_shipped_weights_from_the_original_graphs(tmp_path):
    """pip download the openwakeword 0.4.0 wheel, convert its ONNX graphs (the tool compares the torch module with
    onnxruntime on them and refuses to write on a difference), and get the shipped file's numbers: the weights copied
    from the graph exactly, the batch-norm affine the tool computes (float32 division and square root) to the last
    bits, which differ by one unit between CPUs (seen on 2026-12-07)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "openwakeword==0.4.0", "-d", str(tmp_path), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"the package index is unreachable: {done.stderr.strip().splitlines()[-1:]}")
    (wheel,) = tmp_path.glob("openwakeword-0.4.0-*.whl")
    out = tmp_path / "w.pt"
    argv = [sys.executable, str(REPO / "tools" / "convert_speech_embedding.py"), str(wheel), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "largest difference from onnxruntime" in done.stdout
    made, shipped = torch.load(out, weights_only=True), torch.load(WEIGHTS, weights_only=True)
    assert made.keys() == shipped.keys()
    computed = ("bn_scale", "bn_shift")
    assert all(torch.equal(made[k], shipped[k]) for k in made if k not in computed)
    for k in computed:
        torch.testing.assert_close(made[k], shipped[k], rtol=1e-6, atol=1e-7)
