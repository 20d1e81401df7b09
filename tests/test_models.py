import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiomnist import models
from audiomnist.audio import AudioConfig
from audiomnist.errors import AudiomnistError
from audiomnist.features import FeatureConfig
from audiomnist.runconfig import TrainConfig
from audiomnist.speech_embedding import DIM, num_embeddings

NAMES = [n for n in models.available() if not getattr(models.get(n), "sequence", False)]  # one answer per clip


def _input_shape(name: str, batch: int) -> tuple[int, ...]:
    """What the model sees with its recommended audio and feature settings (defaults elsewhere)."""
    cls = models.get(name)
    rec = cls.recommended
    audio = AudioConfig(**rec.get("audio", {}))
    feats = FeatureConfig(**rec.get("features", {}))
    assert cls.input_kind == {"speech_embedding": "embedding"}.get(feats.kind, feats.kind)
    if cls.input_kind == "waveform":
        return (batch, 1, audio.num_samples)
    if cls.input_kind == "embedding":
        return (batch, num_embeddings(audio.num_samples, audio.sample_rate), DIM)
    return (batch, 1, feats.n_mels, feats.num_frames(audio.num_samples))


def test_registry():
    assert {"seed-cnn", "audionet", "bcresnet", "tcresnet"} <= set(NAMES)
    for name in NAMES:
        cls = models.get(name)
        assert cls.input_kind in ("logmel", "waveform", "embedding")
        assert isinstance(cls.recommended, dict) and set(cls.recommended) <= set(TrainConfig.__dataclass_fields__)
    with pytest.raises(AudiomnistError, match="bcresnet"):
        models.create("no-such-net", 10)
    with pytest.raises(AudiomnistError, match="no_such_arg"):
        models.create("bcresnet", 10, no_such_arg=1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes(name, batch):
    net = models.create(name, 10).eval()
    with torch.no_grad():
        out = net(torch.randn(_input_shape(name, batch)))
    assert out.shape == (batch, 10)
    print(f"{name}: {models.count_parameters(net):,} parameters")


@pytest.mark.parametrize("n_mels,frames", [(32, 51), (40, 101), (64, 101), (64, 94), (128, 63)])
def test_bcresnet_any_input_size(n_mels, frames):
    for kwargs in [dict(width=1), dict(width=1.5, subbands=4 if n_mels % 32 == 0 else 1)]:
        net = models.create("bcresnet", 2, **kwargs).eval()
        assert net(torch.randn(2, 1, n_mels, frames)).shape == (2, 2)


@pytest.mark.parametrize("front", [0, 4])
@pytest.mark.parametrize("frames", [1, 4, 5, 101, 333])
def test_ctc_tcn_gives_one_output_per_four_frames(frames, front):
    net = models.create("ctc-tcn", 11, channels=16, blocks=3, front=front).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 40, frames))
    assert out.shape == (2, math.ceil(frames / 4), 11)
    assert int(net.output_frames(torch.tensor(frames))) == out.shape[1]


@pytest.mark.parametrize("front", [0, 4])
def test_ctc_tcn_looks_ahead_only_a_few_frames(front):
    """Changing input frames from t on changes no output before (t - lookahead) / 4: a stream can be decoded early
    (the 2-D front-end looks only back in time)."""
    torch.manual_seed(0)
    net = models.create("ctc-tcn", 11, channels=16, lookahead=4, front=front).eval()
    x = torch.randn(1, 1, 40, 200)
    y = x.clone()
    y[..., 120:] = torch.randn(1, 1, 40, 80)
    with torch.no_grad():
        a, b = net(x)[0], net(y)[0]
    changed = torch.nonzero((a - b).abs().amax(dim=1) > 1e-6)[:, 0]
    first = int(changed.min())
    assert 120 // 4 - 6 <= first < 120 // 4  # a few output frames of lookahead, not the whole utterance
    assert torch.equal(a[:first], b[:first])


def test_a_sequence_model_is_refused_by_train():
    from audiomnist.errors import ConfigError
    from audiomnist.runconfig import TrainConfig, build_model

    with pytest.raises(ConfigError, match="train-strings"):
        build_model(TrainConfig(model="ctc-tcn"), 10)


def test_bcresnet_width_scales():
    sizes = [models.count_parameters(models.create("bcresnet", 10, width=w)) for w in (1, 3, 8)]
    print("bcresnet parameters by width 1/3/8:", sizes)
    assert 5_000 < sizes[0] < sizes[1] < sizes[2] < 400_000


def test_seed_cnn_architecture():
    torch.manual_seed(0)
    net = models.create("seed-cnn", 10)
    layers = list(net.features)
    kinds = [type(m) for m in layers]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] * 4
    convs = layers[0::3]
    expected = [(1, 8, 5, 2), (8, 16, 3, 1), (16, 32, 3, 1), (32, 64, 3, 1)]
    for conv, bn, (cin, cout, k, pad) in zip(convs, layers[2::3], expected):
        assert (conv.in_channels, conv.out_channels) == (cin, cout)
        assert conv.kernel_size == (k, k) and conv.stride == (2, 2) and conv.padding == (pad, pad)
        assert bn.num_features == cout
        assert torch.count_nonzero(conv.bias) == 0
        fan_in = cin * k * k
        want = math.sqrt(2 / (1 + 0.1**2)) / math.sqrt(fan_in)
        assert conv.weight.std().item() == pytest.approx(want, rel=0.25 if conv.weight.numel() < 500 else 0.06)
    assert isinstance(net.pool, nn.AdaptiveAvgPool2d) and net.pool.output_size == 1
    assert (net.classifier.in_features, net.classifier.out_features) == (64, 10)


def test_audionet_architecture():
    net = models.create("audionet", 10)
    convs = [m for m in net.features if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == [100, 64, 128, 128, 128, 128]
    assert all(c.kernel_size == (3,) and c.padding == (1,) for c in convs)
    pools = [m for m in net.features if isinstance(m, nn.MaxPool1d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] + [(2, 2)] * 5
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(125 * 128, 1024), (1024, 512), (512, 10)]


# Small inputs keep the training checks fast; the architectures are size-agnostic (audionet via num_samples).
TRAIN_SETUPS = {
    "audionet": (dict(num_samples=2000), (8, 1, 2000)),
    "bcresnet": (dict(width=1), (8, 1, 40, 51)),
    "seed-cnn": ({}, (8, 1, 40, 51)),
    "res2d": ({}, (8, 1, 40, 51)),
    "tcresnet": ({}, (8, 1, 40, 51)),
}


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(123)  # the same dropout masks every call, so two losses differ only by the weights
    return F.cross_entropy(net(x), y)


@pytest.mark.parametrize("name", NAMES)
def test_one_step_lowers_loss_and_tiny_batch_overfits(name):
    kwargs, shape = TRAIN_SETUPS.get(name, ({}, _input_shape(name, 8)))
    torch.manual_seed(0)
    net = models.create(name, 4, **kwargs).train()
    x = torch.randn(shape)
    y = torch.arange(shape[0]) % 4
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    before = _loss(net, x, y)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert _loss(net, x, y).item() < before.item()

    opt = torch.optim.Adam(net.parameters(), lr=1e-3 if name == "audionet" else 1e-2)
    for _ in range(50):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * before.item()
    net.eval()
    with torch.no_grad():
        assert (net(x).argmax(1) == y).all()


@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_torch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = models.create(name, 10).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the exported graph is really exercised
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(_input_shape(name, 2))
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (x, torch.randn(_input_shape(name, 3))):
        with torch.no_grad():
            want = net(batch).numpy()
        got = sess.run(None, {"input": batch.numpy()})[0]
        assert np.abs(got - want).max() < 1e-4


def test_bcresnet_subbands_must_divide():
    net = models.create("bcresnet", 10, width=1, subbands=5).eval()
    assert net(torch.randn(1, 1, 40, 101)).shape == (1, 10)
    with pytest.raises(AudiomnistError, match="subbands"):
        net(torch.randn(1, 1, 64, 101))


def test_tcresnet_sizes_and_mel_bands():
    def params(**kw):
        return models.count_parameters(models.create("tcresnet", 10, **kw))

    small, wide, deep = params(), params(width=1.5), params(depth=14)
    print("tcresnet parameters, depth 8 / width 1.5 / depth 14:", small, wide, deep)
    assert 50_000 < small < 80_000  # TC-ResNet8 is ~66k in the paper (40 input bands)
    assert small < wide and small < deep < 200_000
    net = models.create("tcresnet", 10, n_mels=64).eval()
    assert net(torch.randn(2, 1, 64, 63)).shape == (2, 10)
    with pytest.raises(AudiomnistError, match="n_mels=40"):
        net(torch.randn(2, 1, 40, 63))
    with pytest.raises(AudiomnistError, match="depth"):
        models.create("tcresnet", 10, depth=9)


def test_res2d_sizes_and_any_input_size():
    sizes = [models.count_parameters(models.create("res2d", 10, **kw)) for kw in ({}, dict(width=1.5), dict(blocks=2))]
    print("res2d parameters, width 1 / width 1.5 / 2 blocks a stage:", sizes)
    assert 40_000 < sizes[0] < 80_000 and sizes[0] < sizes[1] and sizes[0] < sizes[2]
    net = models.create("res2d", 3).eval()
    for n_mels, frames in [(32, 51), (40, 101), (64, 94), (128, 63)]:
        assert net(torch.randn(2, 1, n_mels, frames)).shape == (2, 3)


def test_res2d_channels_last_is_only_a_layout():
    torch.manual_seed(0)
    fast = models.create("res2d", 10).eval()
    plain = models.create("res2d", 10, channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 1, 40, 101)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("lookahead", [0, 1, 3])
def test_emb_ctc_gives_one_output_per_vector_and_looks_ahead_at_most_lookahead_vectors(lookahead):
    torch.manual_seed(0)
    net = models.create("emb-ctc", 11, hidden=32, layers=3, lookahead=lookahead).eval()
    x = torch.randn(1, 40, 96)
    y = x.clone()
    y[:, 20:] = torch.randn(1, 20, 96)
    with torch.no_grad():
        a, b = net(x)[0], net(y)[0]
    assert a.shape == (40, 11) and int(net.output_frames(torch.tensor(40))) == 40
    first = int(torch.nonzero((a - b).abs().amax(dim=1) > 1e-6)[:, 0].min())
    assert first == 20 - lookahead and torch.equal(a[:first], b[:first])


def test_emb_ctc_can_give_several_outputs_per_vector_in_time_order():
    torch.manual_seed(0)
    one = models.create("emb-ctc", 11, hidden=32).eval()
    two = models.create("emb-ctc", 11, hidden=32, outputs_per_vector=2).eval()
    two.load_state_dict({k: v for k, v in one.state_dict().items() if not k.startswith("head")}, strict=False)
    with torch.no_grad():  # the second output of each vector from the first's weights: both must equal `one`'s
        two.head.weight.copy_(one.head.weight.repeat(2, 1))
        two.head.bias.copy_(one.head.bias.repeat(2))
        x = torch.randn(3, 25, 96)
        a, b = one(x), two(x)
    assert b.shape == (3, 50, 11) and int(two.output_frames(torch.tensor(25))) == 50
    assert torch.allclose(b[:, 0::2], a, atol=1e-6) and torch.allclose(b[:, 1::2], a, atol=1e-6)
    with torch.no_grad():
        two.head.bias[11:] += 1.0  # move only the second output of each vector
        c = two(x)
    assert torch.allclose(c[:, 0::2], a, atol=1e-6) and torch.allclose(c[:, 1::2], a + 1.0, atol=1e-5)
    with pytest.raises(AudiomnistError, match="outputs_per_vector"):
        models.create("emb-ctc", 11, outputs_per_vector=0)


def test_emb_ctc_refuses_log_mel_input():
    from audiomnist.errors import AudiomnistError

    with pytest.raises(AudiomnistError, match="speech_embedding"):
        models.create("emb-ctc", 11)(torch.randn(1, 1, 40, 100))
