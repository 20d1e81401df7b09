"""A digit-string recogniser on the speech_embedding sequence: CTC over one 96-number vector every 80 ms (issue 20).

    python experiments/embedding/ctc.py build MODELS OUT.npz --data FSDD --synth-strings DIR --fold STRING_RUN ...
    python experiments/embedding/ctc.py train OUT.npz [--epochs 30]

build: per FSDD speaker, --per-speaker strings assembled as `train --task strings` does (AssemblyConfig defaults:
1-12 digits, gaps, pauses, tempo, room, noise), the 10-digit test strings of each --fold (the string run's held-out
speaker and seed, said as `audiomnist evaluate` does: experiments/strings/rescore.py's test), and every string of
--synth-strings (`data synth --strings`), each as the embedding sequence of the string with 0.4 s of faint noise
either side. train: leave-one-speaker-out over the folds' speakers; the synthetic strings are always in training.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from extract import embed, prepare_wave, sessions
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strings"))
from fold import held_out  # noqa: E402

from audiomnist.cache import _worker_init  # noqa: E402
from audiomnist.ctc import string_metrics  # noqa: E402
from audiomnist.strings import AssemblyConfig, StringMaker, held_out_strings, list_clips, load_clips  # noqa: E402

SR = 8000
EDGE_S = 0.4  # noise either side, so the first and last words sit mid-window for some embedding
_SESSIONS: tuple = ()  # a worker's onnxruntime sessions, opened once by _worker_start


def _worker_start(parent: int, models: Path) -> None:
    global _SESSIONS
    _worker_init(parent)  # the waveform cache's: the worker dies with its parent, even a SIGKILLed one
    _SESSIONS = sessions(models)


def _embed_one(item: tuple[np.ndarray, int]) -> np.ndarray:
    x, sr = item
    pad = np.zeros(int(EDGE_S * sr), np.float32)
    wave = prepare_wave(np.concatenate([pad, x, pad]), sr, np.random.default_rng(0), window=False)
    return embed(*_SESSIONS, [wave])[0]


def build(args: argparse.Namespace) -> None:
    clips = load_clips([args.data], SR, progress=False)
    maker = StringMaker(clips, SR, AssemblyConfig())
    rows = []  # (audio at SR, or None for a synthetic file; digits; speaker; a test string)
    for k, s in enumerate(maker.speakers):
        rng = np.random.default_rng([99, k])
        rows += [(*maker.make(rng, s), s, False) for _ in range(args.per_speaker)]
    for run in args.fold:
        speaker, seed, _ = held_out(run)
        rows += [(x, d, speaker, True) for x, d in held_out_strings(clips, SR, [speaker], args.test_strings, 10, seed)]
    items = [(x, SR) for x, *_ in rows]
    for path, text, _ in list_clips(args.synth_strings):
        items.append(sf.read(path, dtype="float32"))
        rows.append((None, text, "synth", False))
    print(f"{len(items)} strings to embed", flush=True)
    pool = multiprocessing.get_context("fork").Pool(args.jobs, _worker_start, (os.getpid(), args.models))
    with pool:
        seqs = pool.map(_embed_one, items, chunksize=16)
    _, texts, speakers, test = zip(*rows)
    np.savez(args.out, emb=np.array(seqs, dtype=object), text=np.array(texts), spk=np.array(speakers),
             test=np.array(test))  # fmt: skip


class CtcHead(nn.Module):
    def __init__(self, dim: int = 96, hidden: int = 192, layers: int = 3) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU())
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Dropout(0.1)) for _ in range(layers)
        )
        self.out = nn.Linear(hidden, 11)  # blank + 10 digits

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, dim) -> (B, T, 11) log-probabilities
        z = self.inp(x).transpose(1, 2)
        for conv in self.convs:
            z = z + conv(z)
        return self.out(z.transpose(1, 2)).log_softmax(-1)


def batches(seqs: list, texts: list, rng: np.random.Generator, size: int):
    order = rng.permutation(len(seqs))
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        lengths = torch.tensor([len(seqs[j]) for j in idx])
        x = torch.zeros(len(idx), int(lengths.max()), 96)
        for row, j in enumerate(idx):
            x[row, : len(seqs[j])] = torch.from_numpy(seqs[j])
        targets = torch.tensor([int(c) + 1 for j in idx for c in texts[j]])
        yield x, lengths, targets, torch.tensor([len(texts[j]) for j in idx])


def train_fold(data: dict, held: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    keep = (data["spk"] != held) & ~data["test"]
    seqs, texts = list(data["emb"][keep]), list(data["text"][keep])
    net = CtcHead()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=0.01)
    steps = args.epochs * ((len(seqs) + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    loss_fn = nn.CTCLoss(zero_infinity=True)
    for _ in range(args.epochs):
        net.train()
        for x, lengths, targets, target_lengths in batches(seqs, texts, rng, 32):
            loss = loss_fn(net(x).transpose(0, 1), targets, lengths, target_lengths)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    test = (data["spk"] == held) & data["test"]
    hyps = []
    with torch.no_grad():
        for seq in data["emb"][test]:
            best = net(torch.from_numpy(seq)[None])[0].argmax(-1).numpy()
            keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])  # greedy CTC: collapse, drop blanks
            hyps.append("".join(str(k - 1) for k in best[keep]))
    m = string_metrics(list(data["text"][test]), hyps)
    return {"speaker": held, "der": m["digit_error_rate"], "exact": m["exact_match"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("models", type=Path)
    b.add_argument("out", type=Path)
    b.add_argument("--data", required=True, help="the FSDD recordings folder")
    b.add_argument("--synth-strings", required=True, help="a `data synth --strings` folder")
    b.add_argument("--fold", action="append", required=True, help="a string run (its held-out speaker and seed)")
    b.add_argument("--per-speaker", type=int, default=500, help="assembled training strings per FSDD speaker")
    b.add_argument("--test-strings", type=int, default=200, help="10-digit test strings per fold")
    b.add_argument("--jobs", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--only", nargs="*", help="these held-out speakers only")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "build":
        return build(args)
    data = dict(np.load(args.data, allow_pickle=True))
    folds = args.only or sorted(set(data["spk"][data["test"]]))
    rows = []
    for s in folds:
        rows.append(train_fold(data, s, args))
        print(f"| {s} | {rows[-1]['der']:.3f} | {rows[-1]['exact']:.3f} |", flush=True)
    print(f"| mean | {np.mean([r['der'] for r in rows]):.3f} | {np.mean([r['exact'] for r in rows]):.3f} |")


if __name__ == "__main__":
    main()
