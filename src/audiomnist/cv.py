"""Speaker-grouped cross-validation: a fresh model per fold, each tested on speakers it never heard.

audiomnist cv --data PATH --folds 5        # GroupKFold by speaker
audiomnist cv --data PATH --folds loso     # leave one speaker out
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import Data, load_data, with_default_data
from .evaluate import write_confusion
from .paths import atomic_write, atomic_write_text, new_run_dir
from .runconfig import TrainConfig, add_config_arguments, config_from_args
from .splits import Split, speaker_folds
from .train import add_run_arguments, fit


def cross_validate(
    cfg: TrainConfig,
    data: Data,
    folds: int | str,
    out_dir: Path,
    progress: bool = True,
    only: list[int] | None = None,
    fold_folders: int | None = None,
) -> dict:
    """Train one model per speaker fold (no validation split: the recipe is fixed, the last epoch is kept).

    With fold_folders=N the folds are over the speakers of the first N --data folders only; the clips of the later
    folders (e.g. synthetic voices) are in every fold's training set and never tested.
    """
    usable = data.usable
    in_folds = usable if fold_folders is None else usable[data.source[usable] < fold_folders]
    always = np.setdiff1d(usable, in_folds)
    rows = in_folds
    speakers = data.speakers
    test_sets = speaker_folds(speakers[rows], folds)
    results = []
    total = np.zeros((len(data.classes), len(data.classes)), dtype=np.int64)
    for k, test_local in enumerate(test_sets):
        if only is not None and k not in only:
            continue
        test = rows[test_local]
        train = np.union1d(np.setdiff1d(rows, test), always)
        held_out = sorted(set(speakers[test].tolist()))
        print(
            f"fold {k + 1}/{len(test_sets)}: test speakers {', '.join(held_out)} ({len(test)} clips), train "
            f"{len(train)} clips",
            flush=True,
        )
        split = Split(train, np.array([], dtype=np.int64), test, kind=f"cv fold {k}")
        fold_cfg = dataclasses.replace(cfg, split="fold", fold=k)
        metrics = fit(fold_cfg, data, split, out_dir / f"fold-{k}", progress=progress)
        test_metrics = metrics["test"]
        total += np.array(test_metrics["confusion"])
        results.append(
            {
                "fold": k,
                "test_speakers": held_out,
                "clips": test_metrics["clips"],
                "accuracy": test_metrics["accuracy"],
                "macro_f1": test_metrics["macro_f1"],
            }
        )
        print(f"fold {k + 1}: accuracy {test_metrics['accuracy']:.4f} on {', '.join(held_out)}", flush=True)
    acc = np.array([r["accuracy"] for r in results])
    summary = {
        "folds": folds,
        "model": cfg.model,
        "per_fold": results,
        "mean_accuracy": float(acc.mean()),
        "std_accuracy": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "pooled_accuracy": float(np.trace(total) / max(total.sum(), 1)),
        "confusion": total.tolist(),
    }
    atomic_write_text(out_dir / "cv.json", json.dumps(summary, indent=2) + "\n")
    write_confusion(out_dir, total, data.classes, f"all {len(results)} folds, unseen speakers")
    with atomic_write(out_dir / "folds.csv", "w") as f:
        pd.DataFrame(results).assign(test_speakers=lambda d: d.test_speakers.str.join(" ")).to_csv(f, index=False)
    return summary


def cmd_cv(args: argparse.Namespace) -> int:
    cfg = with_default_data(config_from_args(args))
    folds = args.folds if args.folds == "loso" else int(args.folds)
    out = new_run_dir(f"cv-{cfg.name or cfg.model}", args.runs)
    data = load_data(cfg, progress=not args.no_progress)
    print(f"cross-validation ({folds} folds, grouped by speaker) -> {out}")
    s = cross_validate(
        cfg, data, folds, out, progress=not args.no_progress, only=args.only, fold_folders=args.fold_folders
    )
    print()
    print("| fold | test speakers | clips | accuracy |")
    print("|---|---|---|---|")
    for r in s["per_fold"]:
        print(f"| {r['fold']} | {' '.join(r['test_speakers'])} | {r['clips']} | {r['accuracy']:.4f} |")
    print(
        f"\nmean accuracy {s['mean_accuracy']:.4f} +- {s['std_accuracy']:.4f} (std over folds); pooled "
        f"{s['pooled_accuracy']:.4f}"
    )
    print(f"summary: {out / 'cv.json'}; summed confusion matrix: {out / 'confusion.png'}")
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    # Each fold's split is the fold itself: the split flags of `train` do not apply.
    add_config_arguments(p, exclude=("split", "fold"))
    add_run_arguments(p)
    p.add_argument("--folds", default="5", help="number of speaker folds, or 'loso' (leave one speaker out); default 5")
    p.add_argument("--only", type=int, action="append", help="run only this fold index (repeatable)")
    p.add_argument(
        "--fold-folders",
        type=int,
        metavar="N",
        help="folds over the speakers of the first N --data folders only; the clips of the others are "
        "always in training (default: folds over every folder)",
    )
    p.set_defaults(func=cmd_cv)
