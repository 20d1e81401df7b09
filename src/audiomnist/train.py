"""Train a spoken-digit classifier: one readable loop, speaker-disjoint splits, atomic checkpoints, TensorBoard.

    audiomnist train --data PATH [--model NAME] [--epochs N] [--split speaker|random|paper] ...

Every setting is a TrainConfig field (runconfig.py) and has a flag; `--config FILE` reads them from JSON and the
flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from . import distributed
from .allocator import retain_freed_memory
from .augment import AugmentConfig, augment_waveforms, mixup, reverse_as_none, time_shifts, warp_frequency
from .checkpoint import init_from, load_checkpoint, pick_device, save_checkpoint
from .config import save_json, to_dict
from .dataset import NONE, Data, load_data_everywhere, make_split, row_weights, weighted_rows, with_default_data
from .errors import AudiomnistError
from .evaluate import calibration_line, confusion, fit_temperature, predict_sharded, write_report
from .features import build_frontend, spec_augment
from .paths import atomic_write_text, new_run_dir
from .report import confusion_figure, curves_figure, save_figure, spectrogram_grid
from .runconfig import PRESETS, TrainConfig, add_config_arguments, build_model, config_from_args, config_from_file
from .splits import Split

__all__ = ["PRESETS", "TrainConfig", "fit", "run_dir_for"]


@dataclass
class Loop:
    """What a training run carries from step to step: the network (and its DistributedDataParallel wrapper), the
    front-end, optimizer, schedule and scaler, where it runs, and the history so far."""

    cfg: TrainConfig
    model: torch.nn.Module
    net: torch.nn.Module
    frontend: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype
    use_amp: bool
    writer: SummaryWriter | None
    # A plain time shift happens in the cache's placement copy (the same result, one copy fewer, and the pad's own
    # fill at the edges); a speed change still needs augment's interpolation, which then does the shift too.
    shift_on_placement: bool = False
    wave_augment: AugmentConfig | None = None
    history: list[dict] = dataclasses.field(default_factory=list)
    best_val: float = -1.0
    start_epoch: int = 0
    step: int = 0


def run_dir_for(cfg: TrainConfig, root: Path | None = None) -> Path:
    return new_run_dir(cfg.name or (cfg.preset or cfg.model), root)


def make_optimizer(cfg: TrainConfig, params: list, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW, fused where this torch has a fused kernel for the device (CPU and CUDA): one kernel for
    every parameter instead of several per tensor."""
    if cfg.optimizer not in ("adam", "adamw"):
        raise AudiomnistError(f"unknown --optimizer {cfg.optimizer!r}: choose adam or adamw")
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    if device.type in ("cpu", "cuda"):
        try:
            return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # an older torch without this fused kernel
            pass
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    if cfg.schedule == "onecycle":
        total = max(1, cfg.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def steps_per_epoch(cfg: TrainConfig, train_rows: np.ndarray) -> int:
    """Full global batches per epoch (a last partial batch is dropped), or one batch of everything when smaller."""
    return len(train_rows) // cfg.batch_size if len(train_rows) > cfg.batch_size else 1


def setup(cfg: TrainConfig, data: Data, split: Split, run_dir: Path, resume: bool) -> Loop:
    """Seed, build the network, front-end, optimizer and schedule on this process's device; resume when asked."""
    main, world = distributed.is_main(), distributed.world_size()
    device = distributed.local_device(pick_device(cfg.device))
    retain_freed_memory()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, len(data.classes)).to(device)
    if cfg.init:
        fresh = init_from(model, cfg.init)
        print(f"initialised from {cfg.init}" + (f"; new: {', '.join(fresh)}" if fresh else ""))
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate).to(device)
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad], device)
    sched = make_scheduler(cfg, opt, steps_per_epoch(cfg, split.train))
    use_amp = cfg.amp and device.type == "cuda"
    bf16 = use_amp and torch.cuda.is_bf16_supported(including_emulation=False)
    amp_dtype = torch.bfloat16 if bf16 else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    loop = Loop(cfg, model, model, frontend, opt, sched, scaler, device, amp_dtype, use_amp, None)
    loop.shift_on_placement = cfg.augment.shift_ms > 0 and cfg.augment.speed == (1.0, 1.0)
    loop.wave_augment = dataclasses.replace(cfg.augment, shift_ms=0.0) if loop.shift_on_placement else cfg.augment
    if resume:
        resume_from(loop, run_dir)
    if world > 1:
        loop.net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if main:
        loop.writer = SummaryWriter(str(run_dir / "tb"), purge_step=loop.step if resume else None)
    return loop


def resume_from(loop: Loop, run_dir: Path) -> None:
    """Restore the network, optimizer, schedule, scaler, random state and history from run_dir/last.pt.

    Rank 0 reads last.pt and hands it to the others: only its machine needs to see the run folder.
    """
    last = run_dir / "last.pt"
    state = load_checkpoint(last) if distributed.is_main() and last.exists() else None
    state = distributed.broadcast_object(state)
    if state is None:
        return
    loop.model.load_state_dict(state["model"])
    loop.opt.load_state_dict(state["optimizer"])
    loop.sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    loop.history, loop.best_val = list(state["history"]), float(state["best_val"])
    loop.start_epoch, loop.step = int(state["epoch"]) + 1, int(state["step"])
    if state.get("scaler"):
        loop.scaler.load_state_dict(state["scaler"])
    print(f"resuming {run_dir} after epoch {loop.start_epoch}")


def epoch_generator(
    loop: Loop, data: Data, train_rows: np.ndarray, epoch: int
) -> tuple[np.ndarray, torch.Generator, int]:
    """This rank's rows of the epoch, in order, and the generator (and its seed) its augmentation draws from.

    Every epoch's randomness comes from (seed, epoch), so a resumed run replays exactly what it missed. All ranks
    draw the same permutation; rank r takes every world-th row of it (see distributed.shard_rows), so its
    consecutive blocks of batch_size/world rows together make up the global batch one process would take. Then each
    rank draws its own augmentation and dropout.
    """
    rank, world = distributed.rank(), distributed.world_size()
    seed = distributed.epoch_seed(loop.cfg.seed, epoch)
    gen = torch.Generator().manual_seed(seed)
    if loop.cfg.data_weights:
        train_rows = weighted_rows(data, train_rows, loop.cfg.data_weights, gen)
    order = distributed.shard_rows(train_rows, rank, world, generator=gen)
    if world > 1:
        seed = seed * world + rank
        gen.manual_seed(seed)
    torch.manual_seed(seed)
    gen_dev = gen if loop.device.type == "cpu" else torch.Generator(loop.device).manual_seed(seed)
    return order, gen_dev, seed


def train_step(loop: Loop, data: Data, rows: np.ndarray, gen: torch.Generator, mix_rng: np.random.Generator):
    """One optimizer step on `rows`: (loss, number of correct predictions) of this process's part of the batch."""
    cfg, device, sr = loop.cfg, loop.device, loop.cfg.audio.sample_rate
    y = torch.from_numpy(data.labels[rows]).to(device, non_blocking=True)
    shift = time_shifts(len(rows), cfg.augment, sr, gen, gen.device) if loop.shift_on_placement else None
    wave = data.cache.batch(rows, train=True, generator=gen, device=device, shift=shift)
    if cfg.augment.reverse_none > 0:
        wave, y = reverse_as_none(wave, y, cfg.augment.reverse_none, data.classes.index(NONE), gen)
    wave = augment_waveforms(wave, loop.wave_augment, sr, gen)
    with torch.autocast(device.type, dtype=loop.amp_dtype, enabled=loop.use_amp):
        x = loop.frontend(wave)
        if x.dim() == 4:
            x = warp_frequency(x, loop.frontend.centers_hz, *cfg.augment.vtlp, gen)
            x = spec_augment(x, cfg.specaug, gen)
        y_hit = y  # the label train accuracy counts: with mixup, the one with the larger share
        if cfg.mixup > 0:
            x, y_other, lam = mixup(x, y, cfg.mixup, mix_rng)
            y_hit = y if lam >= 0.5 else y_other
        logits = loop.net(x).float()
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if cfg.mixup > 0:
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y_other, label_smoothing=cfg.label_smoothing)
    loop.opt.zero_grad(set_to_none=True)
    loop.scaler.scale(loss).backward()
    loop.scaler.step(loop.opt)
    loop.scaler.update()
    loop.sched.step()
    loop.step += 1
    return loss.item(), (logits.argmax(1) == y_hit).sum().item()


def train_one_epoch(loop: Loop, data: Data, train_rows: np.ndarray, epoch: int, progress: bool) -> dict:
    """One pass over the training rows; the loss and accuracy of the whole global batch are logged every step."""
    cfg, world = loop.cfg, distributed.world_size()
    local_batch = cfg.batch_size // world
    drop_last = len(train_rows) > cfg.batch_size
    order, gen, seed = epoch_generator(loop, data, train_rows, epoch)
    mix_rng = np.random.default_rng(seed)
    loop.net.train()
    t0, seen, correct, loss_sum = time.time(), 0, 0, 0.0
    bar = tqdm(
        range(steps_per_epoch(cfg, train_rows)),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not progress,
        leave=False,
    )
    for b in bar:
        rows = order[b * local_batch : (b + 1) * local_batch] if drop_last else order
        loss, hits = train_step(loop, data, rows, gen, mix_rng)
        # Sums over all ranks: the loss and accuracy of the whole global batch.
        batch_loss, batch_correct, n = distributed.all_reduce_sum([loss * len(rows), hits, len(rows)], loop.device)
        seen, loss_sum, correct = seen + n, loss_sum + batch_loss, correct + batch_correct
        if loop.writer:
            loop.writer.add_scalar("train/loss", batch_loss / n, loop.step)
            loop.writer.add_scalar("train/accuracy_step", batch_correct / n, loop.step)
            loop.writer.add_scalar("train/lr", loop.sched.get_last_lr()[0], loop.step)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    record = {
        "epoch": epoch + 1,
        "train_loss": float(loss_sum / seen),
        "train_acc": float(correct / seen),
        "seconds": time.time() - t0,
    }
    if loop.writer:
        loop.writer.add_scalar("train/accuracy", record["train_acc"], loop.step)
    distributed.broadcast_buffers(loop.model)
    return record


def validate(loop: Loop, data: Data, rows: np.ndarray, epoch: int) -> dict:
    """Validation loss and accuracy on `rows` (every rank takes a share); rank 0 logs them, the confusion matrix
    and a few example spectrograms to TensorBoard."""
    probs = predict_sharded(loop.model, loop.frontend, data.cache, rows, loop.device)
    y = data.labels[rows]
    out = {
        "val_loss": float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean()),
        "val_acc": float((probs.argmax(1) == y).mean()),
    }
    w = loop.writer
    if w is None:
        return out
    w.add_scalar("val/loss", out["val_loss"], loop.step)
    w.add_scalar("val/accuracy", out["val_acc"], loop.step)
    cm = confusion(y, probs.argmax(1), len(data.classes))
    w.add_figure(
        "val/confusion_matrix", confusion_figure(cm, data.classes, f"validation, epoch {epoch + 1}"), loop.step
    )
    pick = rows[:: max(1, len(rows) // 8)][:8]
    with torch.no_grad():
        specs = loop.frontend(data.cache.batch(pick, train=False).to(loop.device))
        pred = loop.model.eval()(specs).argmax(1).cpu().numpy()
    if specs.dim() == 4:
        names = [data.classes[i] for i in data.labels[pick]], [data.classes[i] for i in pred]
        w.add_figure("val/examples", spectrogram_grid(specs[:, 0].float().cpu().numpy(), *names), loop.step)
    return out


def save_checkpoints(loop: Loop, run_dir: Path, epoch: int, base: dict, improved: bool) -> None:
    """best.pt when the model improved (weights only), and last.pt always (everything a resume needs)."""
    if not distributed.is_main():
        return
    if improved:
        save_checkpoint(
            {**base, "model_state": "best", "epoch": epoch, "model": loop.model.state_dict()}, run_dir / "best.pt"
        )
    save_checkpoint(
        {
            **base,
            "epoch": epoch,
            "step": loop.step,
            "model": loop.model.state_dict(),
            "optimizer": loop.opt.state_dict(),
            "scheduler": loop.sched.state_dict(),
            "scaler": loop.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "history": loop.history,
            "best_val": loop.best_val,
        },
        run_dir / "last.pt",
    )


def calibrate(loop: Loop, data: Data, split: Split, run_dir: Path) -> float:
    """Load best.pt, fit its softmax temperature on the validation speakers and store it in best.pt (1.0 without
    validation speakers: nothing honest to fit on). The test speakers are never used for it. With --data-weight each
    clip counts as often as training draws it, so the calibration serves the mixture the model was trained for."""
    best = distributed.broadcast_object(load_checkpoint(run_dir / "best.pt") if distributed.is_main() else None)
    loop.model.load_state_dict(best["model"])
    temperature = 1.0
    if len(split.val):
        probs = predict_sharded(loop.model, loop.frontend, data.cache, split.val, loop.device)
        weights = row_weights(data, split.val, loop.cfg.data_weights) if loop.cfg.data_weights else None
        temperature = fit_temperature(probs, data.labels[split.val], weights)
    if distributed.is_main():
        save_checkpoint({**best, "temperature": temperature}, run_dir / "best.pt")
    return temperature


def final_test(loop: Loop, data: Data, split: Split, run_dir: Path, temperature: float = 1.0) -> dict | None:
    """best.pt (already in loop.model) on the test speakers: the report folder, and the summary (with its confusion
    matrix) on every rank."""
    if not len(split.test):
        return None
    probs = predict_sharded(loop.model, loop.frontend, data.cache, split.test, loop.device)
    test = None
    if loop.writer:
        test = write_report(run_dir / "report", data, split.test, probs, leaky=split.leaky, temperature=temperature)
        cm = confusion_figure(np.array(test["confusion"]), data.classes, "test")
        loop.writer.add_figure("test/confusion_matrix", cm, loop.step)
    return distributed.broadcast_object(test)


def _epoch_line(cfg: TrainConfig, r: dict) -> str:
    line = f"epoch {r['epoch']}/{cfg.epochs}  loss {r['train_loss']:.4f}  acc {r['train_acc']:.4f}"
    if "val_acc" in r:
        line += f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_acc']:.4f}"
    return line + f"  ({r['seconds']:.1f}s)"


def fit(cfg: TrainConfig, data: Data, split: Split, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train on split.train, keep the best model on split.val (or the last if there is none), test on split.test.

    Under torchrun every rank runs this after distributed.init: cfg.batch_size is the global batch, split evenly over
    the ranks (DistributedDataParallel averages their gradients); rank 0 alone writes the run folder, logs and prints.
    Returns the metrics (metrics.json's content; "test" also carries the test confusion matrix).
    """
    main, world = distributed.is_main(), distributed.world_size()
    if cfg.batch_size % world:
        raise AudiomnistError(
            f"--batch-size {cfg.batch_size} is the global batch: use a multiple of the {world} processes"
        )
    if len(split.train) == 0:
        raise AudiomnistError("the training split is empty")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, run_dir / "config.json")
    loop = setup(cfg, data, split, run_dir, resume)
    base = {
        "model": cfg.model,
        "model_args": dict(cfg.model_args),
        "classes": data.classes,
        "target": cfg.target,
        "config": to_dict(cfg),
    }
    for epoch in range(loop.start_epoch, cfg.epochs):
        record = train_one_epoch(loop, data, split.train, epoch, progress and main)
        if len(split.val):
            record.update(validate(loop, data, split.val, epoch))
        loop.history.append(record)
        # Without validation speakers there is nothing honest to choose by: best.pt is the last epoch.
        improved = record["val_acc"] > loop.best_val if len(split.val) else True
        if improved:
            loop.best_val = record.get("val_acc", record["train_acc"])
        save_checkpoints(loop, run_dir, epoch, base, improved)
        write_metrics(run_dir, split, data.speakers, loop.history, None)
        print(_epoch_line(cfg, record), flush=True)
    if loop.writer:
        loop.writer.flush()
        save_figure(curves_figure(loop.history), run_dir / "curves.png")
    test = final_test(loop, data, split, run_dir, calibrate(loop, data, split, run_dir))
    if loop.writer:
        loop.writer.close()
    return {**write_metrics(run_dir, split, data.speakers, loop.history, test), "test": test}


def write_metrics(run_dir: Path, split: Split, speakers: np.ndarray, history: list[dict], test: dict | None) -> dict:
    """metrics.json: the split (speakers and clip counts), the history, and the test summary without its matrix."""
    metrics = {
        "split": {
            "kind": split.kind,
            "speaker_leaking": split.leaky,
            **{f"{k}_speakers": sorted(set(speakers[getattr(split, k)].tolist())) for k in ("train", "val", "test")},
            **{f"{k}_clips": int(len(getattr(split, k))) for k in ("train", "val", "test")},
        },
        "history": history,
        "test": None if test is None else {k: v for k, v in test.items() if k != "confusion"},
    }
    if distributed.is_main():
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def cmd_train(args: argparse.Namespace) -> int:
    """Plain or under torchrun (one process per device, every one runs this; rank 0 alone prints and writes)."""
    if args.resume:
        if not (Path(args.resume) / "config.json").is_file():
            raise AudiomnistError(f"{args.resume}: not a run folder (no config.json)")
        cfg = config_from_file(Path(args.resume) / "config.json")
        if (Path(args.resume) / "last.pt").exists():  # refuse an unsafe or corrupt last.pt before minutes of scanning
            load_checkpoint(Path(args.resume) / "last.pt")
    else:
        cfg = config_from_args(args)
    with distributed.process_group(pick_device(cfg.device)), distributed.quiet_unless_main():
        return _train(args, cfg)


def _train(args: argparse.Namespace, cfg: TrainConfig) -> int:
    progress = not args.no_progress
    # The run folder is named after rank 0's clock.
    run_dir = Path(args.resume or distributed.broadcast_object(str(run_dir_for(cfg, args.runs))))
    cfg = with_default_data(cfg)
    data = load_data_everywhere(cfg, progress=progress)
    split = make_split(cfg, data)
    print(split.describe(data.speakers))
    print(f"run folder: {run_dir}")
    test = fit(cfg, data, split, run_dir, resume=bool(args.resume), progress=progress)["test"]
    if test:
        label = " (SPEAKER-LEAKING random split: flattering)" if split.leaky else " on unseen speakers"
        print(f"test accuracy{label}: {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  ({test['clips']} clips)")
        print(calibration_line(test["calibration"]))
        print(f"report: {run_dir / 'report'}")
    return 0


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a training command that are not part of the run's config."""
    p.add_argument("--runs", type=Path, help="parent folder of run folders (default ./runs or $AUDIOMNIST_RUNS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_cli(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    add_run_arguments(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt")
    p.set_defaults(func=cmd_train)
