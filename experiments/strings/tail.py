"""Fine-tune the speech_embedding encoder's last layers together with a fold's emb-ctc head, on CPU.

The encoder is frozen in the package: its last layers summarise 775 ms into 96 numbers that Google trained for other
words. Here its layers after a cut (`final`: the last 3x1 convolution; `stage5`: the last stage's four convolutions,
its pooling and `final`) take gradients, starting from the pretrained weights and from RUN's trained head. The
strings of RUN's pool (the same draw) are run through the frozen part once and kept at the cut, so each step costs
only the tail. The held-out speaker's ten-digit strings (fold.test_strings) are then scored alone, as recorded, by
the package's recogniser with the tuned weights put in; `--tail-lr 0` continues the head alone (the control).
`--codec-prob P` puts that share of the pool's strings through one of --codecs (phone_codecs.py) first; with
`--tail-lr 0 --save-run DIR` the continued head is written as a run folder that phone_codecs.py can score.
`--score-codecs C...` scores the held-out strings through those codecs too; `--load PT...` scores saved tails
(this script's `*-lr*.pt`) without training.

    python tail.py RUN --cut stage5 --epochs 5 --out results/tail/nicolas-stage5.json
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fold import held_out, test_strings
from phone_codecs import CODECS, through

from audiomnist import ctc
from audiomnist import speech_embedding as se
from audiomnist.checkpoint import load_checkpoint, save_checkpoint
from audiomnist.recognizer import StringRecognizer
from audiomnist.string_model import edge_samples, load
from audiomnist.strings import load_clips
from audiomnist.train_strings import POOL_SEED, draw, make_sources, split_speakers

CUTS = {"final": 0, "stage5": 5}  # encoder.convs layers after the cut (final is always after it)
BATCH = 16
# G.726 and AAC stay out of training: codecs the model never heard, in phone_codecs.py's table.
TRAIN_CODECS = [c for c in CODECS if c.split()[0] in ("GSM", "telephone", "MP3", "Opus")]


class Trunk(torch.nn.Module):
    """The frozen front of a SpeechEmbedding: waveform -> the encoder's activation at the cut, (B, C, T, F)."""

    def __init__(self, emb: se.SpeechEmbedding, keep: int):
        super().__init__()
        self.emb, self.stop = emb, len(emb.encoder.convs) - keep

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        e, enc = self.emb, self.emb.encoder
        x = wave * (se.PEAK / (wave.abs().amax(dim=1, keepdim=True) + 1e-9))
        x = e.to_16k(x) if e.sample_rate != se.SAMPLE_RATE else x
        x = F.pad(e.log_mel(x), (1, 1))[:, None]
        x = torch.relu(enc.conv0(x))
        x = enc._act(x * enc.bn_scale[:, None, None] + enc.bn_shift[:, None, None])
        for layer in list(enc.convs)[: self.stop]:
            x = layer(x) if isinstance(layer, torch.nn.MaxPool2d) else enc._act(layer(x))
        return x


class Tail(torch.nn.Module):
    """The encoder's layers after the cut (trainable copies) and the head: (B, C, T, F) -> (B, vectors, classes)."""

    def __init__(self, enc: se.Encoder, keep: int, head: torch.nn.Module, train_final: bool):
        super().__init__()
        self.layers = torch.nn.ModuleList(copy.deepcopy(list(enc.convs)[len(enc.convs) - keep :]))
        self.final = copy.deepcopy(enc.final)
        self.layers.requires_grad_(True)
        self.final.requires_grad_(train_final)
        self.head = head

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x) if isinstance(layer, torch.nn.MaxPool2d) else se.Encoder._act(layer(x))
        return self.final(x)[..., 0].transpose(1, 2)

    def forward(self, x: torch.Tensor, vectors: torch.Tensor | None = None) -> torch.Tensor:
        v = self.encode(x)
        if vectors is not None:  # a padded item's extra vectors are zeros, as the pool's padding always was
            v = v * (torch.arange(v.shape[1])[None, :, None] < vectors[:, None, None])
        return self.head(v)


def cut_length(vectors: int, keep: int) -> int:
    """Time steps at the cut that give exactly `vectors` embeddings."""
    return vectors + 2 if keep == 0 else 2 * (vectors + 2) + 4


@torch.no_grad()  # kept tensors feed autograd later, which inference tensors may not
def encode_pool(trunk: Trunk, keep: int, waves: list[np.ndarray], sr: int) -> tuple[list, list]:
    edge = 2 * edge_samples(sr)
    out: list = [None] * len(waves)
    vec: list = [0] * len(waves)
    order = np.argsort([len(w) for w in waves], kind="stable")
    for i in range(0, len(order), BATCH):
        idx = order[i : i + BATCH]
        x = torch.zeros(len(idx), max(len(waves[j]) for j in idx) + edge)
        for row, j in enumerate(idx):
            x[row, edge // 2 : edge // 2 + len(waves[j])] = torch.from_numpy(np.asarray(waves[j], np.float32))
        y = trunk(x)
        for row, j in enumerate(idx):
            vec[j] = se.num_embeddings(len(waves[j]) + edge, sr)
            out[j] = y[row, :, : cut_length(vec[j], keep)].clone()
    return out, vec


def batch(pool: tuple, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    feats, vec, texts = pool
    longest = max(f.shape[1] for f in (feats[i] for i in idx))
    x = torch.stack([F.pad(feats[i], (0, 0, 0, longest - feats[i].shape[1])) for i in idx])
    return x, torch.tensor([vec[i] for i in idx]), [texts[i] for i in idx]


def train(tail: Tail, pool: tuple, args: argparse.Namespace, seed: int) -> list[float]:
    groups = [{"params": list(tail.head.parameters()), "lr": args.lr}]
    enc_params = [p for p in list(tail.layers.parameters()) + list(tail.final.parameters()) if p.requires_grad]
    if enc_params:
        groups.append({"params": enc_params, "lr": args.tail_lr_now})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    total = args.epochs * args.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total,
                                                pct_start=0.1)  # fmt: skip
    rng = np.random.default_rng([seed, 99])
    tail.train()
    losses = []
    for step in range(total):
        x, vec, texts = batch(pool, rng.choice(len(pool[2]), args.batch_size, replace=False))
        logp = F.log_softmax(tail(x, vec), dim=-1).transpose(0, 1)
        targets = torch.tensor([int(c) + 1 for t in texts for c in t])
        loss = F.ctc_loss(logp, targets, vec, torch.tensor([len(t) for t in texts]), zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 5.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % args.steps == 0:
            print(f"epoch {(step + 1) // args.steps}: loss {np.mean(losses[-args.steps :]):.4f}", flush=True)
    return losses


def score_fold(run: Path, tail: Tail | None, keep: int, args: argparse.Namespace) -> dict:
    """The held-out speaker's strings, alone and as recorded (and through --score-codecs), with the tuned layers put
    into the recogniser."""
    rec = StringRecognizer.load(str(run), backend="torch", threads=1, rescore=None, pace=None)
    if tail is not None:
        pipe = rec.model.pipeline
        enc = pipe.frontend[1].encoder
        for i, layer in enumerate(tail.layers):
            enc.convs[len(enc.convs) - keep + i].load_state_dict(layer.state_dict())
        enc.final.load_state_dict(tail.final.state_dict())
        pipe.net.load_state_dict(tail.head.state_dict())
    speaker, seed, sr = held_out(run)
    clips = load_clips([args.data], sr, progress=False)
    conditions = [(s, None) for s in args.paces] + [(1.0, c) for c in args.score_codecs]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s, codec in conditions:
            items = test_strings(clips, sr, speaker, seed, args.strings, stretch=(s, s))
            waves = [x if codec is None else through(codec, x, sr, Path(tmp)) for x, _ in items]
            m = ctc.string_metrics([d for _, d in items], [rec.transcribe(x, sr).digits for x in waves])
            key = f"x{s:g}" if codec is None else codec
            out[key] = {"der": m["digit_error_rate"], "exact": m["exact_match"]}
            print(f"{speaker} {key}: {100 * m['digit_error_rate']:.1f} % / {100 * m['exact_match']:.0f} %", flush=True)
    return out


def coded(w: np.ndarray, args: argparse.Namespace, coin: np.random.Generator, sr: int, tmp: Path) -> np.ndarray:
    """A pool string through one of --codecs with probability --codec-prob (phone_codecs.CODECS)."""
    if coin.uniform() >= args.codec_prob:
        return w
    return through(args.codecs[int(coin.integers(len(args.codecs)))], w, sr, tmp)


def save_run(run: Path, tail: Tail, out: Path) -> None:
    """A run folder the package loads: RUN's config and checkpoint with the trained head (the encoder untouched)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "config.json", out / "config.json")
    state = load_checkpoint(run / "best.pt")
    save_checkpoint({**state, "model": tail.head.state_dict()}, out / "best.pt")


def score_saved(args: argparse.Namespace, emb: se.SpeechEmbedding, keep: int) -> None:
    """--load: RUN's own head, then each saved tail, scored (no pool, no training)."""
    result = {"run": str(args.run), "args": {k: str(v) for k, v in vars(args).items()},
              "before": {} if args.no_before else score_fold(args.run, None, keep, args), "after": {}}  # fmt: skip
    for path in args.load:
        tail = Tail(emb.encoder, keep, load(args.run)[0], train_final=True)
        tail.load_state_dict(torch.load(path, weights_only=True))
        tail.eval()
        result["after"][path.name] = score_fold(args.run, tail, keep, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an emb-ctc string run with one held-out FSDD speaker")
    ap.add_argument("--cut", choices=list(CUTS), default="stage5", help="where the trainable part starts")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of --steps batches")
    ap.add_argument("--steps", type=int, default=250, help="batches an epoch")
    ap.add_argument("--batch-size", type=int, default=32, help="strings a batch")
    ap.add_argument("--lr", type=float, default=3e-4, help="the head's peak learning rate")
    ap.add_argument(
        "--tail-lr",
        type=float,
        nargs="+",
        default=[0.0, 1e-4],
        help="the encoder layers' peak learning rates, one fine-tuning each (0: frozen, the control)",
    )
    ap.add_argument("--pool", type=int, default=0, help="strings in the pool (0: the run's)")
    ap.add_argument("--strings", type=int, default=200, help="held-out test strings")
    ap.add_argument("--data", default="../../../shared/data/fsdd/recordings", help="the FSDD recordings folder")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    ap.add_argument("--codec-prob", type=float, default=0.0, help="pool strings put through a phone codec")
    ap.add_argument(
        "--codecs",
        nargs="+",
        default=[c for c in CODECS if c.split()[0] in ("GSM", "telephone", "MP3", "Opus")],
        choices=list(CODECS),
        help="the codecs the pool strings go through",
    )
    ap.add_argument("--save-run", type=Path, help="--tail-lr 0 only: write the continued head as a run folder")
    ap.add_argument("--score-codecs", nargs="*", default=[], choices=list(CODECS)[1:],
                    help="also score the held-out strings through these codecs")  # fmt: skip
    ap.add_argument("--load", type=Path, nargs="*", default=[], help="score these saved tails (of --cut) only")
    ap.add_argument("--paces", type=float, nargs="+", default=[1.0, 1.3], help="test strings said this much faster")
    ap.add_argument("--no-before", action="store_true", help="do not score RUN's own head first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net, cfg = load(args.run)
    keep = CUTS[args.cut]
    emb = se.SpeechEmbedding(cfg.audio.sample_rate)
    if args.load:
        return score_saved(args, emb, keep)
    t0 = time.time()
    clips = load_clips(cfg.data, cfg.audio.sample_rate, progress=False)
    train_spk, _ = split_speakers(clips, cfg)
    src = make_sources(clips, train_spk, cfg)
    rng = np.random.default_rng([cfg.seed, POOL_SEED])
    feats, vec, texts = [], [], []
    trunk = Trunk(emb, keep)
    coin = np.random.default_rng([cfg.seed, 55])
    tmp = Path(tempfile.mkdtemp())
    while len(texts) < (args.pool or cfg.pool):
        chunk = [draw(clips, src, cfg, rng) for _ in range(256)]
        chunk = [(coded(w, args, coin, cfg.audio.sample_rate, tmp), t) for w, t in chunk]
        f, v = encode_pool(trunk, keep, [w for w, _ in chunk], cfg.audio.sample_rate)
        feats, vec, texts = feats + f, vec + v, texts + [t for _, t in chunk]
    print(f"pool of {len(texts)} at the cut {args.cut}: {time.time() - t0:.0f} s", flush=True)
    result = {"run": str(args.run), "args": {k: str(v) for k, v in vars(args).items()},
              "before": {} if args.no_before else score_fold(args.run, None, keep, args), "after": {}}  # fmt: skip
    for lr in args.tail_lr:
        torch.manual_seed(cfg.seed)
        tail = Tail(emb.encoder, keep, load(args.run)[0], train_final=lr > 0)
        tail.layers.requires_grad_(lr > 0)  # 0: the head alone goes on training (the control)
        args.tail_lr_now = lr
        losses = train(tail, (feats, vec, texts), args, cfg.seed)
        print(f"tail lr {lr:g} trained: {time.time() - t0:.0f} s", flush=True)
        tail.eval()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tail.state_dict(), args.out.with_name(f"{args.out.stem}-lr{lr:g}.pt"))
        if args.save_run is not None and lr == 0:
            save_run(args.run, tail, args.save_run)
        result["after"][f"{lr:g}"] = {"loss": losses[-1], **score_fold(args.run, tail, keep, args)}
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
