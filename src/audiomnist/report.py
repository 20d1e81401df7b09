"""Figures shared by training, evaluation and cross-validation (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .paths import atomic_write  # noqa: E402


def confusion_figure(cm: np.ndarray, classes: list[str], title: str = "confusion matrix") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(classes), 0.6 + 0.5 * len(classes)), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title} (accuracy {acc:.1%})", fontsize=10)
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cm[i, j] > thresh else "black",
                )
    fig.tight_layout()
    return fig


def spectrogram_grid(specs: np.ndarray, true: list[str], pred: list[str], cols: int = 4) -> plt.Figure:
    """Model inputs (N, F, T) with 'true/predicted' titles; wrong predictions in red."""
    n = len(specs)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), dpi=90, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s, t, p in zip(axes.flat, specs, true, pred):
        ax.imshow(s, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"true {t} / pred {p}", fontsize=8, color="black" if t == p else "red")
    fig.tight_layout()
    return fig


def curves_figure(history: list[dict]) -> plt.Figure:
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=100)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if any(h.get(key) is not None for h in history):
            ax1.plot(epochs, [h.get(key) for h in history], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("val_acc", "validation")):
        if any(h.get(key) is not None for h in history):
            ax2.plot(epochs, [h.get(key) for h in history], marker="o", label=label)
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
