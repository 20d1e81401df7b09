"""Google's speech_embedding (Lin et al. 2020, arXiv:2002.01322) of every clip of a folder, saved for heads.py.

    python experiments/embedding/extract.py MODELS FOLDER OUT.npz [--negative]

MODELS holds melspectrogram.onnx and embedding_model.onnx, the ONNX port of the TF Hub module (Apache-2.0) that
ships inside the openwakeword 0.4.0 wheel (README.md: how to get them). Each clip is brought to FSDD's band (8 kHz),
then to the embedding's 16 kHz, peak-normalised, and centred in 1.6 s of faint noise: 11 embeddings of 96 numbers,
one every 80 ms, each over 775 ms. The label is the file name's digit (fsdd layout), -1 with --negative.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import soxr
from tqdm import tqdm

BAND_SR = 8000  # FSDD's rate: every source is band-limited to it, so no source is told apart by its bandwidth
SR = 16000  # the embedding model's rate
WINDOW_S = 1.6  # 11 embeddings; FSDD's longest clips (2.3 s) are centre-cropped
PEAK = 0.5
N_MELS, FRAMES, STEP = 32, 76, 8  # the model's mel bands, frames per embedding and hop between embeddings
BATCH = 32


def sessions(models: Path) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    load = lambda name: ort.InferenceSession(str(models / name), opts, providers=["CPUExecutionProvider"])  # noqa: E731
    return load("melspectrogram.onnx"), load("embedding_model.onnx")


def prepare(path: Path, rng: np.random.Generator, place: str = "centre", noise: bool = True) -> np.ndarray:
    """The clip as the model's input: 16 kHz, int16 scale, in WINDOW_S of noise at -90 dBFS (or zeros), centred, at
    the start or at a random place."""
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return prepare_wave(x.mean(1), sr, rng, place=place, noise=noise)


def prepare_wave(
    x: np.ndarray, sr: int, rng: np.random.Generator, window: bool = True, place: str = "centre", noise: bool = True
) -> np.ndarray:
    """As prepare(); window=False: the whole clip, faint noise added, no window (for strings)."""
    if sr != BAND_SR:
        x = soxr.resample(x, sr, BAND_SR)
    x = soxr.resample(x, BAND_SR, SR)
    x = x / (np.abs(x).max() + 1e-9) * PEAK
    n = int(WINDOW_S * SR) if window else len(x)
    if len(x) > n:
        start = (len(x) - n) // 2
        x = x[start : start + n]
    out = rng.standard_normal(n).astype(np.float32) * 1e-4 * float(noise)
    if place == "random":
        start = int(rng.integers(0, n - len(x) + 1))
    else:
        start = (n - len(x)) // 2 if place == "centre" else 0
    out[start : start + len(x)] += x
    return out * 32767


def embed(mel: ort.InferenceSession, emb: ort.InferenceSession, batch: list[np.ndarray]) -> np.ndarray:
    """(clips, embeddings, 96). The mel scaling x / 10 + 2 is openwakeword's match to the TF Hub module."""
    spec = mel.run(None, {"input": np.stack(batch)})[0].reshape(len(batch), -1, N_MELS) / 10 + 2
    starts = range(0, spec.shape[1] - FRAMES + 1, STEP)
    windows = np.stack([spec[:, i : i + FRAMES] for i in starts], 1)
    out = emb.run(None, {"input_1": windows.reshape(-1, FRAMES, N_MELS, 1).astype(np.float32)})[0]
    return out.reshape(len(batch), len(starts), -1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, help="folder with melspectrogram.onnx and embedding_model.onnx")
    p.add_argument("folder", type=Path, help="clips, fsdd layout ({digit}_{speaker}_{take}.wav)")
    p.add_argument("out", type=Path, help="output .npz: emb, y, spk")
    p.add_argument("--negative", action="store_true", help="every clip is a non-digit (label -1)")
    p.add_argument("--place", choices=("centre", "start", "random"), default="centre", help="where a clip sits")
    p.add_argument("--pad", choices=("noise", "zeros"), default="noise", help="what fills the rest of the window")
    args = p.parse_args()
    mel, emb = sessions(args.models)
    files = sorted(f for f in args.folder.iterdir() if f.suffix in (".wav", ".flac"))
    rng = np.random.default_rng(0)
    out, labels, speakers = [], [], []
    for i in tqdm(range(0, len(files), BATCH), desc=args.folder.name, mininterval=30):
        chunk = files[i : i + BATCH]
        out.append(embed(mel, emb, [prepare(f, rng, args.place, args.pad == "noise") for f in chunk]))
        labels += [-1 if args.negative or not re.match(r"^\d_", f.name) else int(f.name[0]) for f in chunk]
        speakers += [f.stem.split("_")[1] if "_" in f.stem else f.stem for f in chunk]
    vectors = np.concatenate(out).astype(np.float32)
    np.savez(args.out, emb=vectors, y=np.array(labels), spk=np.array(speakers))
    print(args.out, vectors.shape)


if __name__ == "__main__":
    main()
