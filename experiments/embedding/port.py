"""The speech_embedding front end as a torch module, built from the two ONNX files, checked against onnxruntime.

    python experiments/embedding/port.py MODELS [--clips FSDD_FOLDER]

The way in for the package (README.md, "Next"): a frozen torch front end exports with the rest of the pipeline to
one ONNX graph, so predict, serve and the web page need nothing new. The graphs are small and sequential (two
convolutions as a DFT, a mel matrix and a log; then 20 convolutions with batch norm, leaky ReLU, a floor and
max-pooling), so they are rebuilt op by op here rather than through a converter package. Prints the largest
difference from onnxruntime, the time per 1.6 s clip on one thread, and whether torch.onnx exports the port.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from extract import embed, prepare, sessions
from onnx import numpy_helper
from torch import nn

TOP_DB = 80.0


def _weights(path: Path) -> tuple[onnx.GraphProto, dict[str, torch.Tensor]]:
    graph = onnx.load(str(path)).graph
    return graph, {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}


class GoogleMel(nn.Module):
    """(B, samples) at 16 kHz, int16 scale -> (B, frames, 32): power mel in dB, floored TOP_DB under each clip's own
    peak (the ONNX graph floors under the whole batch's), then openwakeword's x / 10 + 2."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        graph, w = _weights(path)
        convs = [n for n in graph.node if n.op_type == "Conv"]
        self.register_buffer("real", w[convs[0].input[1]])
        self.register_buffer("imag", w[convs[1].input[1]])
        self.register_buffer("mel", w[next(n for n in graph.node if n.op_type == "MatMul").input[1]])
        self.stride = next(a.ints[0] for a in convs[0].attribute if a.name == "strides")

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, None, :]
        re = nn.functional.conv1d(x, self.real, stride=self.stride)
        im = nn.functional.conv1d(x, self.imag, stride=self.stride)
        power = (re.square() + im.square()).transpose(1, 2) @ self.mel
        db = 10 * torch.log10(power.clamp_min(1e-10))
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)
        return db / 10 + 2


class SpeechEmbedding(nn.Module):
    """(B, 76, 32) mel windows -> (B, 96): the ONNX graph's nodes in order (it is a chain)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        graph, w = _weights(path)
        self.ops: list[tuple[str, dict, int]] = []
        for k, node in enumerate(graph.node):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            for j, name in enumerate(node.input[1:]):
                self.register_buffer(f"w{k}_{j}", w[name])
            self.ops.append((node.op_type, attrs, len(node.input) - 1))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(mel, (1, 1))[:, None]  # Pad + Reshape: (B, 1, 76, 34)
        for k, (op, attrs, weights) in enumerate(self.ops):
            w = [getattr(self, f"w{k}_{j}") for j in range(weights)]
            if op == "Conv":
                pads = attrs.get("pads", [0, 0, 0, 0])
                x = nn.functional.pad(x, (pads[1], pads[3], pads[0], pads[2]))
                x = nn.functional.conv2d(x, w[0], w[1] if weights > 1 else None)
            elif op == "Relu":
                x = torch.relu(x)
            elif op == "BatchNormalization":
                x = nn.functional.batch_norm(x, w[2], w[3], w[0], w[1], False, 0.0, attrs["epsilon"])
            elif op == "LeakyRelu":
                x = nn.functional.leaky_relu(x, attrs["alpha"])
            elif op == "Max":
                x = torch.maximum(x, w[0])
            elif op == "MaxPool":
                x = nn.functional.max_pool2d(x, attrs["kernel_shape"], attrs["strides"])
        return x.flatten(1)


class Frontend(nn.Module):
    """(B, samples) -> (B, embeddings, 96): one embedding every 8 mel frames (80 ms), each over 76 (775 ms)."""

    def __init__(self, models: Path) -> None:
        super().__init__()
        self.mel = GoogleMel(models / "melspectrogram.onnx")
        self.embedding = SpeechEmbedding(models / "embedding_model.onnx")

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.mel(wave)
        windows = mel.unfold(1, 76, 8).transpose(2, 3)  # (B, n, 76, 32)
        b, n = windows.shape[:2]
        return self.embedding(windows.reshape(b * n, 76, 32)).reshape(b, n, -1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, help="folder with melspectrogram.onnx and embedding_model.onnx")
    p.add_argument("--clips", type=Path, help="a folder of real clips to compare on (else noise)")
    p.add_argument("--n", type=int, default=32, help="clips to compare")
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    if args.clips:
        files = sorted(args.clips.glob("*.wav"))
        waves = [prepare(f, rng) for f in files[:: max(1, len(files) // args.n)][: args.n]]
    else:
        waves = [rng.standard_normal(25600).astype(np.float32) * 3000 for _ in range(args.n)]
    front = Frontend(args.models).eval()
    want = np.concatenate([embed(*sessions(args.models), [w]) for w in waves])  # one clip a call: per-clip floor
    with torch.no_grad():
        start = time.perf_counter()
        got = front(torch.from_numpy(np.stack(waves))).numpy()
        seconds = (time.perf_counter() - start) / len(waves)
    print(
        f"{len(waves)} clips: largest difference {np.abs(got - want).max():.2e} (values up to {np.abs(want).max():.1f})"
    )
    print(f"torch, one thread: {seconds * 1000:.1f} ms a 1.6 s clip")
    buf = io.BytesIO()
    torch.onnx.export(front, torch.from_numpy(np.stack(waves[:2])), buf, dynamo=False, input_names=["wave"],
                      dynamic_axes={"wave": {0: "batch"}})  # fmt: skip
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    again = sess.run(None, {"wave": np.stack(waves)})[0]
    size = len(buf.getvalue()) / 1e6
    print(f"re-exported from torch: {size:.1f} MB, largest difference {np.abs(again - want).max():.2e}")


if __name__ == "__main__":
    main()
