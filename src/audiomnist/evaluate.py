"""Evaluate a trained model: batched prediction over cache rows, accuracy, macro-F1, per-class and per-speaker
results, confusion matrix, mistakes. Training calls it every epoch; `audiomnist evaluate` re-scores a run.

    audiomnist evaluate RUN_DIR [--data PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from . import distributed, string_model
from .cache import WaveformCache
from .checkpoint import load_trained, pick_device
from .config import load_json
from .dataset import Data, load_data, make_split
from .errors import AudiomnistError
from .features import build_frontend
from .paths import atomic_write, atomic_write_text
from .report import confusion_figure, save_figure
from .runconfig import TrainConfig, with_data


@torch.no_grad()
def predict_rows(
    net: torch.nn.Module,
    frontend: torch.nn.Module,
    cache: WaveformCache,
    rows: np.ndarray,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Class probabilities for cache rows, each clip centred in the window (evaluation placement)."""
    net.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        wave = cache.batch(rows[i : i + batch_size], train=False, device=device)
        out.append(torch.softmax(net(frontend(wave)).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def predict_sharded(
    net: torch.nn.Module, frontend: torch.nn.Module, cache: WaveformCache, rows: np.ndarray, device: torch.device
) -> np.ndarray:
    """predict_rows with every torchrun rank taking every world-th row; all ranks get all rows back, in order."""
    rank, world = distributed.rank(), distributed.world_size()
    return distributed.gather_rows(predict_rows(net, frontend, cache, rows[rank::world], device), len(rows))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def summarize(y_true: np.ndarray, probs: np.ndarray, classes: list[str], speakers: np.ndarray) -> dict:
    """Headline metrics of predictions `probs` (N, C) against labels `y_true` (N,)."""
    y_pred = probs.argmax(1)
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_speaker = {
        str(spk): float((y_pred[speakers == spk] == y_true[speakers == spk]).mean())
        for spk in sorted(set(speakers.tolist()))
    }
    return {
        "clips": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "per_speaker_accuracy": per_speaker,
        "confusion": confusion(y_true, y_pred, len(classes)).tolist(),
    }


def write_confusion(out_dir: Path, cm: np.ndarray, classes: list[str], title: str) -> None:
    """confusion.csv and confusion.png of a confusion matrix (rows true, columns predicted)."""
    with atomic_write(out_dir / "confusion.csv", "w") as f:
        pd.DataFrame(cm, index=[f"true_{c}" for c in classes], columns=[f"pred_{c}" for c in classes]).to_csv(f)
    save_figure(confusion_figure(cm, classes, title), out_dir / "confusion.png")


def write_report(out_dir: Path, data: Data, rows: np.ndarray, probs: np.ndarray, leaky: bool = False) -> dict:
    """Write metrics.json, confusion.png/.csv, per_speaker.csv, misclassified.csv for `rows` of `data`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = data.catalog.table.iloc[rows]
    y_true = data.labels[rows]
    speakers = table["speaker"].astype(str).to_numpy()
    summary = summarize(y_true, probs, data.classes, speakers)
    summary["speaker_leaking"] = bool(leaky)
    cm = np.array(summary["confusion"])
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    title = "confusion matrix" + (" (speaker-leaking split)" if leaky else " (unseen speakers)")
    write_confusion(out_dir, cm, data.classes, title)
    with atomic_write(out_dir / "per_speaker.csv", "w") as f:
        pd.Series(summary["per_speaker_accuracy"], name="accuracy").rename_axis("speaker").to_csv(f)
    y_pred = probs.argmax(1)
    wrong = np.flatnonzero(y_pred != y_true)
    mistakes = pd.DataFrame(
        {
            "path": table["path"].to_numpy()[wrong],
            "speaker": speakers[wrong],
            "true": [data.classes[i] for i in y_true[wrong]],
            "predicted": [data.classes[i] for i in y_pred[wrong]],
            "probability": probs[wrong, y_pred[wrong]].round(4),
        }
    )
    with atomic_write(out_dir / "misclassified.csv", "w") as f:
        mistakes.to_csv(f, index=False)
    return summary


def evaluate_run(
    run_dir: Path,
    data_paths: list[str] | None = None,
    out: Path | None = None,
    checkpoint: str = "best.pt",
    progress: bool = True,
) -> dict:
    """Re-evaluate a run: on its own test speakers, or on every usable clip of other data (`data_paths`)."""
    device = pick_device("auto")
    net, cfg, classes = load_trained(Path(run_dir) / checkpoint, device)
    if data_paths:
        cfg = with_data(cfg, data_paths)
    data = load_data(cfg, progress=progress)
    if data_paths:
        rows, leaky, where = data.usable, False, "all usable clips of " + ", ".join(data_paths)
    else:
        rows, leaky, where = _test_rows(Path(run_dir), cfg, data)
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate).to(device)
    probs = predict_rows(net, frontend, data.cache, rows, device)
    out = Path(out) if out else Path(run_dir) / ("report" if not data_paths else "report-external")
    summary = write_report(out, data, rows, probs, leaky=leaky)
    print(f"evaluated on {where}: {summary['clips']} clips")
    print(
        f"accuracy {summary['accuracy']:.4f}  macro-F1 {summary['macro_f1']:.4f}"
        + ("  [SPEAKER-LEAKING split]" if leaky else "")
    )
    worst = sorted(summary["per_speaker_accuracy"].items(), key=lambda kv: kv[1])[:5]
    print("lowest per-speaker accuracy: " + ", ".join(f"{s} {a:.3f}" for s, a in worst))
    print(f"report: {out}")
    return summary


def _test_rows(run_dir: Path, cfg: TrainConfig, data: Data) -> tuple[np.ndarray, bool, str]:
    """The run's own test clips: its recorded test speakers (so speakers added to the data later never leak in),
    or for a speaker-leaking random split the same seeded split again."""
    recorded = None
    if (run_dir / "metrics.json").is_file():
        recorded = load_json(run_dir / "metrics.json").get("split")
    if recorded and not recorded.get("speaker_leaking") and recorded.get("test_speakers"):
        speakers = recorded["test_speakers"]
        rows = data.usable[np.isin(data.speakers[data.usable], speakers)]
        if len(rows) == 0:
            raise AudiomnistError(f"{run_dir}: none of its test speakers ({', '.join(speakers)}) are in the data")
        return rows, False, f"the run's {len(speakers)} test speaker(s) ({recorded.get('kind', 'speaker')} split)"
    if cfg.split == "fold":
        raise AudiomnistError(f"{run_dir}: a cross-validation fold without a readable metrics.json; pass --data")
    split = make_split(cfg, data)
    if len(split.test) == 0:
        raise AudiomnistError(f"{run_dir}: the run has no test split (trained on everything); pass --data")
    return split.test, split.leaky, f"the run's {split.kind} test split"


def cmd_evaluate(args: argparse.Namespace) -> int:
    config = Path(args.run_dir) / "config.json"
    if config.is_file() and "assembly" in (load_json(config) or {}):  # a digit-string run (train-strings)
        report = string_model.evaluate_run(Path(args.run_dir), args.speaker, args.data)
        print(string_model.summary_line(report))
        print(f"report: {Path(args.run_dir) / 'report' / 'strings.json'}")
        return 0
    evaluate_run(Path(args.run_dir), args.data, args.out, args.checkpoint, progress=not args.no_progress)
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder written by `audiomnist train`")
    p.add_argument(
        "--data", action="append", help="evaluate on all clips of this dataset instead of the run's test split"
    )
    p.add_argument("--out", type=Path, help="report folder (default RUN_DIR/report)")
    p.add_argument(
        "--speaker", action="append", help="string runs: score strings of this speaker (default: its test speakers)"
    )
    p.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
