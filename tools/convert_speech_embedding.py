"""Make src/audiomnist/pretrained/speech_embedding.pt from the ONNX port of Google's speech_embedding.

    pip download --no-deps openwakeword==0.4.0           # the wheel holds the two ONNX graphs (Apache-2.0)
    python tools/convert_speech_embedding.py openwakeword-0.4.0-py3-none-any.whl [--out PATH]

SOURCE is that wheel or a folder holding melspectrogram.onnx and embedding_model.onnx. The encoder's weights are
taken node by node from embedding_model.onnx into audiomnist.speech_embedding.Encoder, after checking that the graph
is the chain that module is (operators, kernels, activation constants); its batch norm becomes a per-channel affine.
The mel graph contributes no weights: its DFT rows and mel matrix are rebuilt from their definition and compared.
Then the whole front end is compared with onnxruntime running the two original graphs on speech-like test signals,
and the file is written only when they agree.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from audiomnist.paths import atomic_write
from audiomnist.speech_embedding import FLOOR, LEAK, WEIGHTS, WINDOW_FRAMES, Encoder, SpeechEmbedding

MEMBER = "openwakeword/resources/models/{}"
TOLERANCE = 1e-3  # embeddings run to about 50: float32 rounding through 20 convolutions stays far under this


def read_graphs(source: Path) -> tuple[bytes, bytes]:
    names = ("melspectrogram.onnx", "embedding_model.onnx")
    if source.is_dir():
        return tuple((source / n).read_bytes() for n in names)  # type: ignore[return-value]
    with zipfile.ZipFile(source) as z:
        return tuple(z.read(MEMBER.format(n)) for n in names)  # type: ignore[return-value]


def encoder_state(graph: onnx.GraphProto) -> dict[str, torch.Tensor]:
    """The Encoder's state dict from the graph's initializers, node by node; raises if the chain differs."""
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    for n in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "LeakyRelu" and abs(attrs["alpha"] - LEAK) > 1e-6:
            raise SystemExit(f"unexpected LeakyRelu alpha {attrs['alpha']}")
        if n.op_type == "Max" and abs(float(init[n.input[1]].flatten()[0]) - FLOOR) > 1e-6:
            raise SystemExit("unexpected activation floor")
    bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
    gamma, beta, mean, var = (init[i] for i in bn.input[1:])
    eps = next(a.f for a in bn.attribute if a.name == "epsilon")
    scale = gamma / torch.sqrt(var + eps)
    enc = Encoder()
    targets = [enc.conv0, *[m for m in enc.convs if isinstance(m, torch.nn.Conv2d)], enc.final]
    if len(targets) != len(convs):
        raise SystemExit(f"the graph has {len(convs)} convolutions, the Encoder {len(targets)}")
    state = {"bn_scale": scale, "bn_shift": beta - mean * scale}
    names = {id(m): name for name, m in enc.named_modules()}
    for node, module in zip(convs, targets):
        weight = init[node.input[1]]
        if weight.shape != module.weight.shape:
            raise SystemExit(f"{node.name}: weight {tuple(weight.shape)}, expected {tuple(module.weight.shape)}")
        state[f"{names[id(module)]}.weight"] = weight
        if module.bias is not None:
            state[f"{names[id(module)]}.bias"] = init[node.input[2]]
    return state


def test_signals(rng: np.random.Generator, n: int = 8, seconds: float = 1.6) -> np.ndarray:
    """Harmonic tones with moving pitch under an envelope, plus noise, at int16 scale and 16 kHz."""
    t = np.arange(int(seconds * 16000)) / 16000
    out = []
    for _ in range(n):
        f0 = rng.uniform(90, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voice = sum(np.sin(k * phase) / k for k in range(1, 15)) * np.exp(-(((t - 0.8) / 0.3) ** 2))
        x = voice + 0.01 * rng.standard_normal(len(t))
        out.append((x / np.abs(x).max() * 0.5 * 32767).astype(np.float32))
    return np.stack(out)


def onnx_embeddings(mel_bytes: bytes, emb_bytes: bytes, waves: np.ndarray) -> np.ndarray:
    """openwakeword's way: mel graph per clip (its floor is per call), x / 10 + 2, 76-frame windows every 8."""
    mel = ort.InferenceSession(mel_bytes, providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(emb_bytes, providers=["CPUExecutionProvider"])
    rows = []
    for w in waves:
        spec = mel.run(None, {"input": w[None]})[0].reshape(-1, 32) / 10 + 2
        windows = np.stack([spec[i : i + WINDOW_FRAMES] for i in range(0, len(spec) - WINDOW_FRAMES + 1, 8)])
        rows.append(emb.run(None, {"input_1": windows[..., None].astype(np.float32)})[0].reshape(len(windows), -1))
    return np.stack(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="openwakeword-0.4.0 wheel, or a folder with the two .onnx files")
    p.add_argument("--out", type=Path, default=WEIGHTS, help="where to write the weights (default: the package's)")
    args = p.parse_args()
    mel_bytes, emb_bytes = read_graphs(args.source)
    state = encoder_state(onnx.load_from_string(emb_bytes).graph)
    buf = io.BytesIO()
    torch.save(state, buf)
    tmp = args.out.with_suffix(".check.pt")
    tmp.write_bytes(buf.getvalue())
    try:
        front = SpeechEmbedding(16000, weights=tmp)
    finally:
        tmp.unlink()
    waves = test_signals(np.random.default_rng(0))
    want = onnx_embeddings(mel_bytes, emb_bytes, waves)
    with torch.no_grad():
        # The package's front end brings every clip to the same peak the test signals already have.
        got = front(torch.from_numpy(waves)).numpy()
    diff = float(np.abs(got - want).max())
    print(f"largest difference from onnxruntime: {diff:.2e} (values up to {np.abs(want).max():.1f})")
    if got.shape != want.shape or diff > TOLERANCE:
        print(f"not written: shapes {got.shape} vs {want.shape}, or difference over {TOLERANCE}", file=sys.stderr)
        return 1
    with atomic_write(args.out) as f:
        f.write(buf.getvalue())
    print(f"wrote {args.out} ({sum(v.numel() for v in state.values()):,} numbers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
