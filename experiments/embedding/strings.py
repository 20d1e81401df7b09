"""Digit strings of held-out FSDD speakers (experiments/strings/rescore.py's test) with the single-digit rescorer
replaced by a speech_embedding head that never heard the speaker either.

    python experiments/embedding/strings.py MODELS EMB --fold STRING_RUN DIGIT_RUN [--fold ...] --data FSDD

Per fold: the string model alone, rescored by DIGIT_RUN (as shipped), and rescored by a head trained here on EMB's
fsdd.npz without the held-out speaker plus nowarp.npz (loso.py's recipe: real weight 16, 10 epochs). The audio gate
of DIGIT_RUN still decides which stretches hold speech, so only the ear differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from extract import embed, prepare_wave, sessions
from heads import load, probabilities, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strings"))
from fold import held_out  # noqa: E402

from audiomnist.ctc import string_metrics  # noqa: E402
from audiomnist.recognizer import StringRecognizer  # noqa: E402
from audiomnist.strings import held_out_strings, load_clips  # noqa: E402


class EmbeddingEar:
    """Stands in for StringRecognizer.rescorer: the digit run's gate, the head's probabilities."""

    def __init__(self, gate, head: torch.nn.Module, models: Path) -> None:
        self.gate, self.head, self.sessions = gate, head, sessions(models)
        self.sample_rate, self.classes = gate.sample_rate, [str(d) for d in range(10)]

    def gated_probabilities(self, segs: list[np.ndarray]) -> tuple[None, np.ndarray]:
        gated = np.isnan(self.gate.gated_probabilities(segs)[1][:, 0])
        rng = np.random.default_rng(0)
        vectors = embed(*self.sessions, [prepare_wave(s, self.sample_rate, rng) for s in segs])
        probs = probabilities(self.head, vectors)
        probs[gated] = np.nan
        return None, probs


def score_fold(args: argparse.Namespace, string_run: Path, digit_run: Path) -> dict:
    speaker, seed, sr = held_out(string_run)
    fsdd, synth = load(str(args.emb / "fsdd.npz")), load(str(args.emb / "nowarp.npz"))
    keep = fsdd["spk"] != speaker
    head = train([(fsdd["emb"][keep], fsdd["y"][keep], 16.0), (synth["emb"], synth["y"], 1.0)], 10, 10, 0)
    ten = held_out_strings(load_clips([args.data], sr, progress=False), sr, [speaker], args.strings, 10, seed)
    refs, out = [d for _, d in ten], {"speaker": speaker}
    for way in ("string model", "rescored", "embedding"):
        rec = StringRecognizer.load(
            string_run, backend="torch", threads=1, rescore=None if way == "string model" else digit_run
        )
        if way == "embedding":
            rec = StringRecognizer(rec.model, rec.backend, rec.path, EmbeddingEar(rec.rescorer, head, args.models))
        m = string_metrics(refs, [rec.transcribe(x, sr).digits for x, _ in ten])
        out[way] = (m["digit_error_rate"], m["exact_match"])
        print(f"{speaker} {way}: DER {m['digit_error_rate']:.3f} exact {m['exact_match']:.3f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, help="folder with melspectrogram.onnx and embedding_model.onnx")
    ap.add_argument("emb", type=Path, help="folder with extract.py's fsdd.npz and nowarp.npz")
    ap.add_argument("--fold", nargs=2, action="append", required=True, metavar=("STRING_RUN", "DIGIT_RUN"))
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--strings", type=int, default=200, help="10-digit test strings per fold")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [score_fold(args, Path(s), Path(d)) for s, d in args.fold]
    ways = ("string model", "rescored", "embedding")
    print("| held-out speaker | " + " | ".join(f"{w}: DER / exact" for w in ways) + " |")
    for r in rows + [{"speaker": "mean", **{w: tuple(np.mean([r[w] for r in rows], 0)) for w in ways}}]:
        print(f"| {r['speaker']} | " + " | ".join(f"{r[w][0]:.3f} / {r[w][1]:.3f}" for w in ways) + " |")


if __name__ == "__main__":
    main()
