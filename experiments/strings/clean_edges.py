"""Trust the single-digit model alone for a word whose stretch is quiet at both edges (a word said on its own, cut
cleanly), and the product of both models otherwise (experiments/strings/README.md, "Rescoring"; not adopted).

    python experiments/strings/clean_edges.py --data ../shared/data/fsdd/recordings \
        --fold STRING_RUN DIGIT_RUN [--fold ...] [--edges-db -40 -30 -20]
"""

from __future__ import annotations

import argparse

import numpy as np
from fold import held_out

from audiomnist.audio import full_scale
from audiomnist.ctc import PAD_S, decode, string_metrics, word_segments
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import TEST_ASSEMBLY, assemble, held_out_strings, load_clips


def edge_db(seg: np.ndarray, sr: int) -> float:
    """The louder edge (PAD_S at each end) against the loudest 10 ms of the stretch, in dB."""
    f, e = sr // 100, int(PAD_S * sr)
    if len(seg) < 2 * e + f:
        return 0.0
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))  # noqa: E731
    peak = max(rms(seg[i : i + f]) for i in range(0, len(seg) - f + 1, f))
    return 20 * np.log10(max(rms(seg[:e]), rms(seg[-e:])) / peak)


def digits(rec: StringRecognizer, x: np.ndarray, edge: float) -> str:
    x = full_scale(x)
    probs = rec.probabilities(x)
    hits = decode(probs, min_gap=rec.model.timing.min_gap)
    if not hits:
        return ""
    q = rec.rescorer_probabilities(hits, x, list(range(len(hits))))
    out = ""
    for h, row, seg in zip(hits, q, word_segments(hits, x, rec.sample_rate, rec.frame_seconds)):
        if np.isnan(row).any():
            out += h.digit
            continue
        w = 1.0 if edge_db(seg, rec.sample_rate) < edge else 0.5
        p = probs[h.frame, 1:] / probs[h.frame, 1:].sum()
        out += str(int(np.argmax(w * np.log(row + 1e-9) + (1 - w) * np.log(p + 1e-9))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fold", nargs=2, action="append", required=True, metavar=("STRING_RUN", "DIGIT_RUN"))
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--edges-db", type=float, nargs="+", default=[-40.0, -30.0, -20.0], help="quiet-edge limits")
    args = ap.parse_args()
    for string_run, digit_run in args.fold:
        speaker, seed, sr = held_out(string_run)
        clips = load_clips([args.data], sr, progress=False)
        ten = held_out_strings(clips, sr, [speaker], 200, 10, seed)
        rng = np.random.default_rng(seed)
        single = [(assemble([a], sr, TEST_ASSEMBLY, rng)[0], t)
                  for a, t, s in zip(clips.audio, clips.text, clips.speaker) if s == speaker]  # fmt: skip
        rec = StringRecognizer.load(string_run, backend="torch", threads=1, rescore=digit_run)
        for edge in [-np.inf, *args.edges_db]:
            m = string_metrics([d for _, d in ten], [digits(rec, x, edge) for x, _ in ten])
            iso = np.mean([digits(rec, x, edge) == t for x, t in single])
            print(f"| {speaker} | {edge:g} | {m['digit_error_rate']:.4f} | {m['exact_match']:.3f} | {iso:.3f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
