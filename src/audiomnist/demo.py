"""The main job: train the default model and evaluate it on speakers it never heard, then say where the report is."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .dataset import load_data, make_split, with_default_data
from .runconfig import TrainConfig, with_data
from .train import add_run_arguments, fit, run_dir_for


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = TrainConfig(name="demo")
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    cfg = with_default_data(with_data(cfg, args.data) if args.data else cfg)
    data = load_data(cfg, progress=not args.no_progress)
    split = make_split(cfg, data)
    print(split.describe(data.speakers))
    run_dir = run_dir_for(cfg, args.runs)
    print(f"training {cfg.model} for {cfg.epochs} epochs -> {run_dir}")
    metrics = fit(cfg, data, split, run_dir, progress=not args.no_progress)
    test, speakers = metrics["test"], metrics["split"]["test_speakers"]
    print()
    print(
        f"accuracy on {len(speakers)} unseen speakers ({', '.join(speakers)}): {test['accuracy']:.4f}, "
        f"macro-F1 {test['macro_f1']:.4f}"
    )
    print(f"report (confusion matrix, per-speaker accuracy, mistakes): {run_dir / 'report'}")
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    print(f"try it: audiomnist predict --model {run_dir} some.wav")
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        type=Path,
        help="dataset folder (default: AudioMNIST in AUDIOMNIST_HOME, else the shipped sample)",
    )
    p.add_argument("--epochs", type=int, help="override the default number of epochs")
    add_run_arguments(p)
    p.set_defaults(func=cmd_demo)
