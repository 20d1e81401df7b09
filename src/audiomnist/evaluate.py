"""Evaluate a trained model: batched prediction over cache rows, accuracy, macro-F1, per-class and per-speaker
results, confusion matrix, mistakes. Training calls it every epoch; `audiomnist evaluate` re-scores a run.

    audiomnist evaluate RUN_DIR [--data PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from . import distributed, string_model
from .cache import WaveformCache
from .checkpoint import load_calibrated, pick_device
from .config import load_json
from .ctc import is_string_config
from .dataset import NONE, Data, load_data, make_split
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


ECE_BINS = 15
MIN_PROB_CURVE = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
MAX_TEMPERATURE = 20.0


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): log p is the logits up to a per-row constant, which softmax drops."""
    z = np.log(np.clip(probs.astype(np.float64), 1e-30, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the labels, each row counted by its weight (default 1)."""
    if not len(y):
        return float("nan")
    return float(np.average(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-30, None)), weights=weights))


def fit_temperature(probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The one scalar T that minimises the NLL of softmax(logits / T) on (probs, y): temperature scaling (Guo et al.
    2017). It never changes the argmax, only how sure the model says it is. 1.0 when there is nothing to fit on.
    `weights` count each row as training draws it (its folder's --data-weight)."""
    if len(y) == 0 or probs.size == 0:
        return 1.0
    res = minimize_scalar(
        lambda log_t: nll(with_temperature(probs, float(np.exp(log_t))), y, weights),
        bounds=(-np.log(MAX_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
    )
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: |accuracy - mean confidence| of the top class, averaged over equal-width confidence bins by their size."""
    if len(y) == 0:
        return float("nan")
    conf, hit = probs.max(axis=1), (probs.argmax(axis=1) == y)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(hit[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
            for b in range(bins)
            if (which == b).any()
        )
    )


def acceptance(y: np.ndarray, probs: np.ndarray, classes: list[str], min_prob: float) -> dict:
    """What a Classifier with this --min-prob answers: accepted = a digit (not NONE, top probability >= min_prob).

    Digits accepted and the accuracy among them; clips of class NONE (if any) wrongly accepted as a digit."""
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    none = classes.index(NONE) if NONE in classes else -1
    accepted = (top != none) & (conf >= min_prob)
    digit, negative = y != none, y == none
    right = (top == y)[accepted & digit]
    out = {
        "min_prob": min_prob,
        "digits_accepted": float(accepted[digit].mean()) if digit.any() else float("nan"),
        "accuracy_on_accepted": float(right.mean()) if len(right) else float("nan"),
    }
    if negative.any():
        out["none_accepted_as_digit"] = float(accepted[negative].mean())
    return out


def calibration_summary(y: np.ndarray, probs: np.ndarray, classes: list[str], temperature: float) -> dict:
    """ECE and NLL before and after temperature scaling, and the acceptance curve over --min-prob (calibrated)."""
    cal = with_temperature(probs, temperature)
    return {
        "temperature": float(temperature),
        "ece": expected_calibration_error(probs, y),
        "ece_calibrated": expected_calibration_error(cal, y),
        "nll": nll(probs, y),
        "nll_calibrated": nll(cal, y),
        "acceptance": [acceptance(y, cal, classes, t) for t in MIN_PROB_CURVE],
    }


def write_confusion(out_dir: Path, cm: np.ndarray, classes: list[str], title: str) -> None:
    """confusion.csv and confusion.png of a confusion matrix (rows true, columns predicted)."""
    with atomic_write(out_dir / "confusion.csv", "w") as f:
        pd.DataFrame(cm, index=[f"true_{c}" for c in classes], columns=[f"pred_{c}" for c in classes]).to_csv(f)
    save_figure(confusion_figure(cm, classes, title), out_dir / "confusion.png")


def write_report(
    out_dir: Path, data: Data, rows: np.ndarray, probs: np.ndarray, leaky: bool = False, temperature: float = 1.0
) -> dict:
    """Write metrics.json, confusion.png/.csv, per_speaker.csv, misclassified.csv for `rows` of `data`; `probs` are
    the network's own (T = 1), calibrated with `temperature` for the calibration part."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = data.catalog.table.iloc[rows]
    y_true = data.labels[rows]
    speakers = table["speaker"].astype(str).to_numpy()
    summary = summarize(y_true, probs, data.classes, speakers)
    summary["speaker_leaking"] = bool(leaky)
    summary["calibration"] = calibration_summary(y_true, probs, data.classes, temperature)
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
    negatives: list[str] | None = None,
) -> dict:
    """Re-evaluate a run: on its own test speakers, or on every usable clip of other data (`data_paths`, and
    `negatives`: folders of non-digits, class "none", for a run trained with --negative)."""
    device = pick_device("auto")
    net, cfg, classes, (temperature, _) = load_calibrated(Path(run_dir) / checkpoint, device)
    external = list(data_paths or []) + list(negatives or [])
    if negatives and NONE not in classes:
        raise AudiomnistError(f"{run_dir}: --negative needs a run trained with --negative (its classes have no 'none')")
    if external:
        negs = tuple(str(Path(p).resolve()) for p in negatives or [])
        cfg = dataclasses.replace(with_data(cfg, data_paths or []), negatives=negs)
    data = load_data(cfg, progress=progress)
    data.classes = classes  # the model's: digits without --negative folders still have a "none" column to land in
    if external:
        rows, leaky, where = data.usable, False, "all usable clips of " + ", ".join(external)
    else:
        rows, leaky, where = _test_rows(Path(run_dir), cfg, data)
    frontend = build_frontend(cfg.features, cfg.audio.sample_rate).to(device)
    probs = predict_rows(net, frontend, data.cache, rows, device)
    out = Path(out) if out else Path(run_dir) / ("report" if not external else "report-external")
    summary = write_report(out, data, rows, probs, leaky=leaky, temperature=temperature)
    print(f"evaluated on {where}: {summary['clips']} clips")
    print(calibration_line(summary["calibration"]))
    print(
        f"accuracy {summary['accuracy']:.4f}  macro-F1 {summary['macro_f1']:.4f}"
        + ("  [SPEAKER-LEAKING split]" if leaky else "")
    )
    worst = sorted(summary["per_speaker_accuracy"].items(), key=lambda kv: kv[1])[:5]
    print("lowest per-speaker accuracy: " + ", ".join(f"{s} {a:.3f}" for s, a in worst))
    print(f"report: {out}")
    return summary


def calibration_line(cal: dict) -> str:
    """One line: temperature, ECE before/after, and the acceptance at a few --min-prob values."""
    parts = [f"T {cal['temperature']:.3f}  ECE {cal['ece']:.4f} -> {cal['ece_calibrated']:.4f} (15 bins)"]
    for a in cal["acceptance"]:
        if a["min_prob"] in (0.0, 0.5, 0.7, 0.9):
            none = f", none as digit {a['none_accepted_as_digit']:.3f}" if "none_accepted_as_digit" in a else ""
            parts.append(f"min-prob {a['min_prob']:g}: digits accepted {a['digits_accepted']:.3f}{none}")
    return "; ".join(parts)


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
    if config.is_file() and is_string_config(load_json(config)):  # a train-strings run
        report = string_model.evaluate_run(Path(args.run_dir), args.speaker, args.data, args.negative)
        print(string_model.summary_line(report))
        print(f"report: {Path(args.run_dir) / 'report' / 'strings.json'}")
        return 0
    evaluate_run(
        Path(args.run_dir), args.data, args.out, args.checkpoint, progress=not args.no_progress, negatives=args.negative
    )
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder written by `audiomnist train`")
    p.add_argument(
        "--data", action="append", help="evaluate on all clips of this dataset instead of the run's test split"
    )
    p.add_argument(
        "--negative",
        action="append",
        metavar="PATH",
        help="also evaluate on all clips of this folder of non-digits, as class 'none' (string runs: said alone and "
        "among the digits)",
    )
    p.add_argument("--out", type=Path, help="report folder (default RUN_DIR/report)")
    p.add_argument(
        "--speaker", action="append", help="string runs: score strings of this speaker (default: its test speakers)"
    )
    p.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
