"""Train a digit-string model (CTC over {blank, 0-9}) on strings assembled on the fly and spoken whole.

    audiomnist train-strings --data FSDD --data SYNTH_DIGITS --data SYNTH_STRINGS --test-speaker nicolas

Every batch is new: each item picks a folder (by --data-weight), then either one of its recorded whole strings
(--whole-prob) or a string of 1-12 random digits assembled from one speaker's isolated clips (strings.assemble).
A model on the frozen speech_embedding encoder (--features.kind speech_embedding) instead draws --pool strings
that way once, encodes them once, and draws its batches from that pool (the encoder costs far more than the head).
Speakers are split per folder, held-out test speakers never reach training or validation, and the final test
is strings of theirs (string_model.held_out_report). Run folders, TensorBoard, best.pt/last.pt and --resume work
as for `audiomnist train`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from .augment import warp_frequency
from .checkpoint import load_checkpoint, save_checkpoint
from .config import add_arguments, load_json, merged, overrides_from_args, save_json, to_dict
from .ctc import STRING_CLASSES, timing
from .errors import AudiomnistError, ConfigError
from .features import spec_augment
from .paths import atomic_write_text, new_run_dir
from .speech_embedding import num_embeddings
from .string_model import (
    TASK,
    StringNet,
    StringTrainConfig,
    build,
    config_from_dict,
    edge_samples,
    held_out_report,
    load,
    score,
    score_probabilities,
    string_frontend,
    string_probabilities,
    summary_line,
)
from .strings import TEST_ASSEMBLY, WORD, Clips, StringMaker, list_clips, list_negatives, load_clips

ENCODE_BATCH = 16  # utterances of similar length encoded together
POOL_CHUNK = 256  # strings drawn (as audio) at a time while a pool is encoded, so the audio never piles up
POOL_SEED = 1  # the pool's own stream, apart from the epochs' (seed, epoch)
LABELS = {c: i for i, c in enumerate(STRING_CLASSES)} | {WORD: len(STRING_CLASSES)}  # CTC targets; 0 is blank
MAX_OTHERS = 3  # non-digit clips in one string with --negative
WORDS_ONLY = 0.2  # share of those strings with no digit at all: a word alone must give none either


@dataclass
class Sources:
    """Per folder: the assembler of its training speakers (None without isolated clips) and its whole strings."""

    makers: list[StringMaker | None]
    wholes: list[list[int]]
    weights: np.ndarray
    others: Clips | None = None  # --negative clips of training speakers, said among the digits


def split_speakers(clips: Clips, cfg: StringTrainConfig) -> tuple[set[str], set[str]]:
    """(train, validation) speakers: test speakers out, then val_frac of the speakers of folders with 10 or more.

    A speaker id is one voice wherever it appears (the synthetic digits and strings share their voice plan), so the
    validation voices are drawn once from all such folders together and never reach training through another one.
    """
    rng = np.random.default_rng(cfg.seed)
    everyone, pool = set(clips.speaker) - set(cfg.test_speakers), set()
    for folder in range(len(cfg.data)):
        names = {s for s, f in zip(clips.speaker, clips.source) if f == folder} - set(cfg.test_speakers)
        if len(names) >= 10:
            pool |= names
    pool_sorted = sorted(pool)
    val = set(rng.permutation(pool_sorted)[: round(len(pool_sorted) * cfg.val_frac)].tolist()) if pool_sorted else set()
    return everyone - val, val


def make_sources(clips: Clips, speakers: set[str], cfg: StringTrainConfig, others: Clips | None = None) -> Sources:
    """Per --data folder its training speakers' assembler and whole strings; `others`: non-digit clips to say among
    the digits (--negative)."""
    makers, wholes = [], []
    for folder in range(len(cfg.data)):
        keep = np.array([f == folder and s in speakers for s, f in zip(clips.speaker, clips.source)])
        sub = clips.select(keep)
        try:
            makers.append(StringMaker(sub, cfg.audio.sample_rate, cfg.assembly))
        except AudiomnistError:
            makers.append(None)
        wholes.append([int(i) for i in np.flatnonzero(keep) if len(clips.text[i]) > 1])
    usable = np.array([m is not None or len(w) > 0 for m, w in zip(makers, wholes)], dtype=float)
    weights = np.asarray(cfg.data_weights or [1.0] * len(cfg.data), dtype=float) * usable
    if weights.sum() == 0:
        raise AudiomnistError("no training material: no folder has a speaker with all ten digits or whole strings")
    return Sources(makers, wholes, weights / weights.sum(), others)


def load_others(cfg: StringTrainConfig, held: set[str], progress: bool) -> Clips | None:
    """--negative clips, less those of validation and test speakers (a voice id is one voice in every folder)."""
    if not cfg.negatives:
        return None
    others = load_clips(cfg.negatives, cfg.audio.sample_rate, progress, lister=list_negatives)
    others = others.select(np.array([s not in held for s in others.speaker]))
    if not len(others):
        raise AudiomnistError("--negative: every clip there is a validation or test speaker's; none left to train on")
    return others


def draw(clips: Clips, src: Sources, cfg: StringTrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    folder = int(rng.choice(len(src.weights), p=src.weights))
    maker, wholes = src.makers[folder], src.wholes[folder]
    if wholes and (maker is None or rng.uniform() < cfg.whole_prob):
        i = wholes[int(rng.integers(len(wholes)))]
        return clips.audio[i], clips.text[i]
    if src.others is None or rng.uniform() >= cfg.negative_prob:
        return maker.make(rng)
    picks = rng.integers(len(src.others), size=int(rng.integers(1, MAX_OTHERS + 1)))
    length = 0 if rng.uniform() < WORDS_ONLY else None
    return maker.make(rng, length=length, others=[src.others.audio[i] for i in picks], mark=WORD * cfg.word_class)


def pad_time(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-utterance inputs zero-padded to the longest along time, and their lengths: log-mel items are
    (1, mels, frames) (time last), speech_embedding items (vectors, 96) (time first)."""
    axis = -1 if feats[0].dim() == 3 else 0
    lengths = torch.tensor([f.shape[axis] for f in feats])
    longest = int(lengths.max())
    if axis == 0:
        return torch.stack([F.pad(f, (0, 0, 0, longest - len(f))) for f in feats]), lengths
    return torch.stack([F.pad(f, (0, longest - f.shape[-1])) for f in feats]), lengths


def features(frontend: torch.nn.Module, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input of each utterance computed on its own (no padding in its statistics), zero-padded."""
    return pad_time([frontend(torch.from_numpy(np.asarray(w, np.float32))[None])[0] for w in waves])


@torch.inference_mode()
def encode(frontend: torch.nn.Module, waves: list[np.ndarray], sample_rate: int) -> list[torch.Tensor]:
    """speech_embedding vectors of each utterance, (vectors, 96) each. Utterances of similar length run together;
    the encoder scales and floors each one on its own and its windows do not reach past their audio, so every
    vector is the one the utterance alone gives (tests/test_train_strings.py checks it)."""
    edge = 2 * edge_samples(sample_rate)
    out: list[torch.Tensor] = [torch.empty(0)] * len(waves)
    order = np.argsort([len(w) for w in waves], kind="stable")
    for i in range(0, len(order), ENCODE_BATCH):
        idx = order[i : i + ENCODE_BATCH]
        x = torch.zeros(len(idx), max(len(waves[j]) for j in idx))
        for row, j in enumerate(idx):
            x[row, : len(waves[j])] = torch.from_numpy(np.asarray(waves[j], np.float32))
        y = frontend(x)
        for row, j in enumerate(idx):
            out[j] = y[row, : num_embeddings(len(waves[j]) + edge, sample_rate)].clone()
    return out


def make_pool(clips: Clips, src: Sources, cfg: StringTrainConfig, frontend, progress: bool) -> tuple[list, list]:
    """cfg.pool strings drawn as batches draw them (seeded by cfg.seed alone), encoded once: (vectors, texts)."""
    rng = np.random.default_rng([cfg.seed, POOL_SEED])
    feats: list[torch.Tensor] = []
    texts: list[str] = []
    with tqdm(total=cfg.pool, desc="encoding the string pool", disable=not progress, leave=False) as bar:
        while len(texts) < cfg.pool:
            chunk = [draw(clips, src, cfg, rng) for _ in range(min(POOL_CHUNK, cfg.pool - len(texts)))]
            feats += encode(frontend, [w for w, _ in chunk], cfg.audio.sample_rate)
            texts += [t for _, t in chunk]
            bar.update(len(chunk))
    return feats, texts


def next_batch(clips, src, pool, cfg: StringTrainConfig, frontend, rng, gen) -> tuple:
    """(inputs, lengths, texts) of one training batch: fresh log-mel strings, augmented, or draws from the pool."""
    if pool is not None:
        idx = rng.choice(len(pool[1]), cfg.batch_size, replace=False)
        x, frames = pad_time([pool[0][i] for i in idx])
        return x, frames, [pool[1][i] for i in idx]
    waves, texts = zip(*[draw(clips, src, cfg, rng) for _ in range(cfg.batch_size)])
    x, frames = features(frontend, list(waves))
    return spec_augment(warp_frequency(x, frontend.centers_hz, *cfg.vtlp, gen), cfg.specaug, gen), frames, texts


def train_step(net, opt, sched, x: torch.Tensor, frames: torch.Tensor, texts) -> float:
    logp = F.log_softmax(net(x), dim=-1).transpose(0, 1)  # (T, B, C)
    out_len = net.output_frames(frames)
    targets = torch.tensor([LABELS[c] for t in texts for c in t])
    target_len = torch.tensor([len(t) for t in texts])
    loss = F.ctc_loss(logp, targets, out_len, target_len, blank=0, zero_infinity=True)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    sched.step()
    return loss.item()


def validate(net, cfg: StringTrainConfig, val: list, val_feats: list | None) -> dict:
    """Digit error rate and exact match on the validation strings (their vectors when encoded once)."""
    if val_feats is None:
        metrics, _ = score(StringNet(net, cfg), val)
    else:
        net.eval()
        with torch.inference_mode():
            probs = [string_probabilities(net(f[None]), cfg)[0].numpy() for f in val_feats]
        metrics, _ = score_probabilities(probs, [d for _, d in val], timing(to_dict(cfg)).min_gap)
    net.train()
    return metrics


def validation_set(clips: Clips, speakers: set[str], cfg: StringTrainConfig) -> list[tuple[np.ndarray, str]]:
    """A fixed set from the validation speakers: strings said as the test says them, of every length."""
    if not speakers or cfg.val_strings <= 0:
        return []
    keep = np.array([s in speakers for s in clips.speaker])
    try:
        maker = StringMaker(clips.select(keep), cfg.audio.sample_rate, TEST_ASSEMBLY)
    except AudiomnistError:
        return []
    rng = np.random.default_rng([cfg.seed, 7])
    return [maker.make(rng) for _ in range(cfg.val_strings)]


def fit(cfg: StringTrainConfig, run_dir: Path, resume: bool, progress: bool) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resume = resume and (run_dir / "last.pt").exists()
    start = init_weights(cfg) if cfg.init and not resume else None  # a bad --init fails before any data or folder
    clips = load_clips(cfg.data, cfg.audio.sample_rate, progress)
    missing = sorted(set(cfg.test_speakers) - set(clips.speaker))
    if missing:
        raise AudiomnistError(f"--test-speaker not in the data: {', '.join(missing)}")
    train_spk, val_spk = split_speakers(clips, cfg)
    others = load_others(cfg, val_spk | set(cfg.test_speakers), progress)
    src, val = make_sources(clips, train_spk, cfg, others), validation_set(clips, val_spk, cfg)
    print(f"speakers: {len(train_spk)} train, {len(val_spk)} validation, test: {', '.join(cfg.test_speakers) or '-'}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json(cfg, run_dir / "config.json")
    torch.manual_seed(cfg.seed)
    net = build(cfg)
    frontend = string_frontend(cfg)
    pool = val_feats = None
    if cfg.features.kind == "speech_embedding":
        pool = make_pool(clips, src, cfg, frontend, progress)
        val_feats = encode(frontend, [w for w, _ in val], cfg.audio.sample_rate) if val else None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * cfg.steps)
    state = {"history": [], "best": float("inf"), "epoch": 0}
    if resume:
        last = load_checkpoint(run_dir / "last.pt")
        net.load_state_dict(last["model"])
        opt.load_state_dict(last["optimizer"])
        sched.load_state_dict(last["scheduler"])
        state = {"history": last["history"], "best": last["best_val"], "epoch": last["epoch"]}
        print(f"resuming {run_dir} after epoch {state['epoch']}")
    elif start is not None:
        net.load_state_dict(start)
        print(f"starting from the weights of {cfg.init}")
    writer = SummaryWriter(str(run_dir / "tb"))
    for epoch in range(state["epoch"], cfg.epochs):
        record = run_epoch(net, frontend, opt, sched, (clips, src, pool), cfg, epoch, writer, progress)
        if val:
            metrics = validate(net, cfg, val, val_feats)
            record.update(val_der=metrics["digit_error_rate"], val_exact=metrics["exact_match"])
            writer.add_scalar("val/digit_error_rate", record["val_der"], (epoch + 1) * cfg.steps)
        state["history"].append(record)
        improved = record.get("val_der", -epoch) <= state["best"]
        state["best"] = min(state["best"], record.get("val_der", -epoch))
        save(net, opt, sched, cfg, run_dir, epoch + 1, state, improved)
        print(_epoch_line(cfg, record), flush=True)
    writer.close()
    return finish(cfg, run_dir, clips, state["history"], train_spk, val_spk)


def init_weights(cfg: StringTrainConfig) -> dict:
    """--init's weights: those of an earlier string run of the same network and size."""
    other, other_cfg = load(cfg.init)
    if (other_cfg.model, other_cfg.model_args) != (cfg.model, cfg.model_args):
        raise AudiomnistError(
            f"--init {cfg.init}: a {other_cfg.model} {other_cfg.model_args or ''} run, this run builds "
            f"{cfg.model} {cfg.model_args or ''}; fine-tuning needs the same network"
        )
    return other.state_dict()


def run_epoch(net, frontend, opt, sched, data: tuple, cfg, epoch: int, writer, progress: bool) -> dict:
    """cfg.steps batches of fresh strings (or pool draws); their randomness comes from (seed, epoch), so a resumed
    run repeats it. `data`: (clips, sources, pool or None)."""
    rng = np.random.default_rng([cfg.seed, epoch])
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    net.train()
    t0, losses = time.time(), []
    bar = tqdm(range(cfg.steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
    for step in bar:
        losses.append(train_step(net, opt, sched, *next_batch(*data, cfg, frontend, rng, gen)))
        writer.add_scalar("train/ctc_loss", losses[-1], epoch * cfg.steps + step)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.time() - t0}


def save(net, opt, sched, cfg, run_dir: Path, epoch: int, state: dict, improved: bool) -> None:
    classes = STRING_CLASSES + [WORD] * cfg.word_class
    base = {"task": TASK, "model": net.state_dict(), "classes": classes, "config": to_dict(cfg), "epoch": epoch}
    if improved:
        save_checkpoint(base, run_dir / "best.pt")
    save_checkpoint({**base, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "history": state["history"], "best_val": state["best"]}, run_dir / "last.pt")  # fmt: skip


def finish(cfg, run_dir: Path, clips: Clips, history: list, train_spk: set, val_spk: set) -> dict:
    """metrics.json (split, history, test on the held-out speakers with best.pt)."""
    metrics = {"split": {"train_speakers": len(train_spk), "val_speakers": sorted(val_spk),
                         "test_speakers": list(cfg.test_speakers)}, "history": history, "test": None}  # fmt: skip
    if cfg.test_speakers:
        net, _ = load(run_dir)
        metrics["test"] = held_out_report(StringNet(net, cfg), clips, cfg, list(cfg.test_speakers))
        (run_dir / "report").mkdir(exist_ok=True)
        atomic_write_text(run_dir / "report" / "strings.json", json.dumps(metrics["test"], indent=2) + "\n")
        print(summary_line(metrics["test"]))
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _epoch_line(cfg: StringTrainConfig, r: dict) -> str:
    line = f"epoch {r['epoch']}/{cfg.epochs}  ctc loss {r['train_loss']:.4f}"
    if "val_der" in r:
        line += f"  val digit error rate {r['val_der']:.4f}  exact {r['val_exact']:.3f}"
    return line + f"  ({r['seconds']:.1f}s)"


def config_from_args(args: argparse.Namespace) -> StringTrainConfig:
    """Defaults < --config file < flags given on the command line."""
    base = to_dict(StringTrainConfig())
    if getattr(args, "config", None):
        from_file = load_json(args.config)
        if not isinstance(from_file, dict):
            raise ConfigError(f"{args.config}: not a JSON object of StringTrainConfig fields")
        base = merged(base, from_file, ("model_args",))
    given = overrides_from_args(args, StringTrainConfig)
    for key in ("data", "negatives"):
        if key in given:
            given[key] = [str(Path(p).resolve()) for p in given[key]]
    return config_from_dict(merged(base, given, ("model_args",)))


def cross_validate(cfg: StringTrainConfig, out_dir: Path, speakers: list[str], progress: bool) -> dict:
    """Leave one speaker out: a fold per speaker (its own run folder, fold-SPEAKER), every other clip of every folder
    in training. A fold with a metrics.json is kept and one with only last.pt resumed, so a stopped cv goes on.
    cfg.init names an earlier cv folder: each fold starts from that cv's run of the same fold."""
    if cfg.init and not all((Path(cfg.init) / f"fold-{s}").is_dir() for s in speakers):
        raise AudiomnistError(
            f"--init {cfg.init}: with --loso, name an earlier --loso folder holding fold-SPEAKER for every fold "
            "(one run for all folds would have heard each fold's test speaker)"
        )
    folds = {}
    for k, s in enumerate(speakers):
        fold_dir = out_dir / f"fold-{s}"
        print(f"fold {k + 1}/{len(speakers)}: test speaker {s}", flush=True)
        if (fold_dir / "metrics.json").is_file():
            folds[s] = load_json(fold_dir / "metrics.json")["test"]
            print(f"  done before: {summary_line(folds[s])}")
        else:
            init = str(Path(cfg.init) / f"fold-{s}") if cfg.init else ""
            fold_cfg = replace(cfg, test_speakers=(s,), name=f"{cfg.name}-{s}".strip("-"), init=init)
            folds[s] = fit(fold_cfg, fold_dir, (fold_dir / "last.pt").is_file(), progress)["test"]
    result = cv_summary(folds)
    atomic_write_text(out_dir / "cv.json", json.dumps(result, indent=2) + "\n")
    for spk, row in result["folds"].items():
        print(f"{spk:>12}  " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if v is not None))
    line = "  ".join(f"{k} {v['mean']:.4f} +- {v['std']:.4f}" for k, v in result["summary"].items())
    print(f"mean over {len(folds)} folds: {line}; summary: {out_dir / 'cv.json'}")
    return result


CV_METRICS = {
    "digit_error_rate": ("ten_digits", "digit_error_rate"),
    "exact_match": ("ten_digits", "exact_match"),
    "isolated_accuracy": ("isolated_clips", "accuracy"),
}


def cv_summary(folds: dict[str, dict]) -> dict:
    """Each fold's 10-digit DER, exact match and isolated-clip accuracy; their mean, std and worst fold."""
    table = {s: {k: r.get(a, {}).get(b) for k, (a, b) in CV_METRICS.items()} for s, r in folds.items()}
    summary = {}
    for k in CV_METRICS:
        v = [row[k] for row in table.values() if row[k] is not None]
        if v:
            worst = max(v) if k == "digit_error_rate" else min(v)
            summary[k] = {"mean": float(np.mean(v)), "std": float(np.std(v)), "worst": float(worst)}
    return {"folds": table, "summary": summary}


def loso_speakers(cfg: StringTrainConfig, only: list[str] | None) -> list[str]:
    """The speakers of the first --data folder (the real voices; later folders stay in every fold's training)."""
    speakers = sorted({spk for _, _, spk in list_clips(cfg.data[0])})
    missing = sorted(set(only or []) - set(speakers))
    if missing:
        raise AudiomnistError(f"--only: not a speaker of {cfg.data[0]}: {', '.join(missing)}")
    return [s for s in speakers if not only or s in only]


def cmd_train_strings(args: argparse.Namespace) -> int:
    if args.loso:
        if args.resume:
            raise AudiomnistError("--loso resumes by itself: give the same --runs/--name again, or --loso-dir")
        cfg = config_from_args(args)
        if not cfg.data:
            raise AudiomnistError(
                "name the clips to learn from with --data (the first folder's speakers are the folds)"
            )
        if cfg.test_speakers:
            raise AudiomnistError("--loso makes its own test speakers: drop --test-speaker")
        out = Path(args.loso_dir) if args.loso_dir else new_run_dir(f"cv-{cfg.name or 'strings'}", args.runs)
        out.mkdir(parents=True, exist_ok=True)
        print(f"cv folder: {out}")
        cross_validate(cfg, out, loso_speakers(cfg, args.only), not args.no_progress)
        return 0
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise AudiomnistError(f"{run_dir}: not a run folder (no config.json)")
        if (run_dir / "last.pt").exists():
            load_checkpoint(run_dir / "last.pt")
        cfg = config_from_dict(load_json(run_dir / "config.json"))
    else:
        cfg = config_from_args(args)
        run_dir = new_run_dir(cfg.name or "strings", args.runs)
    if not cfg.data:
        raise AudiomnistError("name the clips to learn from with --data (e.g. FSDD's recordings folder)")
    print(f"run folder: {run_dir}")
    fit(cfg, run_dir, bool(args.resume), not args.no_progress)
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="JSON file of StringTrainConfig fields; flags override it")
    add_arguments(p, StringTrainConfig())
    p.add_argument("--runs", type=Path, help="parent folder of run folders (default ./runs or $AUDIOMNIST_RUNS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt")
    p.add_argument(
        "--loso",
        action="store_true",
        help="cross-validate: one run per speaker of the first --data folder, tested on that speaker; cv.json sums up",
    )
    p.add_argument("--only", action="append", metavar="SPEAKER", help="with --loso: only these speakers' folds")
    p.add_argument(
        "--loso-dir", metavar="DIR", help="with --loso: the cv folder (an existing one goes on where it was)"
    )
    p.set_defaults(func=cmd_train_strings)
