"""The main job: train the default model and evaluate it on speakers it never heard, then say where the report is."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from .train import TrainConfig, default_data, fit, load_data, make_split, run_dir_for

    cfg = TrainConfig(name="demo")
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.data:
        cfg = dataclasses.replace(cfg, data=tuple(str(Path(d).resolve()) for d in args.data))
    else:
        root, note = default_data()
        print(note)
        cfg = dataclasses.replace(cfg, data=(root,))
    data = load_data(cfg, progress=not args.no_progress)
    split = make_split(cfg, data)
    print(split.describe(data.speakers))
    run_dir = run_dir_for(cfg, args.runs)
    print(f"training {cfg.model} for {cfg.epochs} epochs -> {run_dir}")
    metrics = fit(cfg, data, split, run_dir, progress=not args.no_progress)
    test = metrics["test"]
    print()
    print(f"accuracy on {len(metrics['split']['test_speakers'])} unseen speakers "
          f"({', '.join(metrics['split']['test_speakers'])}): {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}")
    print(f"report (confusion matrix, per-speaker accuracy, mistakes): {run_dir / 'report'}")
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    print(f"try it: audiomnist predict --model {run_dir} some.wav")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("demo", help="the main job: train the default model, evaluate it on unseen speakers", description=__doc__)
    p.add_argument("--data", action="append", help="dataset folder (default: AudioMNIST in AUDIOMNIST_HOME, else the shipped sample)")
    p.add_argument("--epochs", type=int, help="override the default number of epochs")
    p.add_argument("--runs", type=Path, help="parent folder of run folders (default ./runs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
