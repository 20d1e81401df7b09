"""Figures of `audiomnist analyze` (matplotlib, Agg): one function per figure, each taking plain tables."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from .analyze_quality import QualityConfig  # noqa: E402
from .analyze_result import Analysis  # noqa: E402
from .paths import atomic_write  # noqa: E402

ACCENT = "#3b6ea8"
SECOND = "#e3a33b"
WARN = "#c0392b"
MUTED = "#8a8f98"
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.axisbelow": True,
}
SUBTYPES = {
    "PCM_S8": "8-bit\nPCM",
    "PCM_U8": "8-bit PCM\n(unsigned)",
    "PCM_16": "16-bit\nPCM",
    "PCM_24": "24-bit\nPCM",
    "PCM_32": "32-bit\nPCM",
    "FLOAT": "32-bit\nfloat",
    "DOUBLE": "64-bit\nfloat",
}
CHANNELS = {"1": "mono", "2": "stereo"}
META_TITLES = {"gender": "Speakers by gender", "accent": "Speakers by accent", "room": "Speakers by recording room",
               "native_speaker": "Native speakers"}  # fmt: skip
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")


def save_figure(fig: plt.Figure, path: Path) -> Path:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _bars(ax: plt.Axes, labels: list[str], values, colors=ACCENT, annotate: bool = True) -> None:
    """Vertical count bars with their values on top; few bars keep a bar's shape instead of filling the axis."""
    values = np.asarray(values)
    x = np.arange(len(values))
    bars = ax.bar(x, values, color=colors, width=0.7)
    if annotate:
        ax.bar_label(bars, [f"{v:,}" for v in values], padding=2, fontsize=8)
    pad = max(0.0, (4 - len(values)) / 2)
    ax.set_xlim(-0.6 - pad, len(values) - 0.4 + pad)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, max(1, values.max()) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.grid(axis="x", visible=False)


def _speaker_ticks(ax: plt.Axes, names: list[str]) -> None:
    """Every speaker's name when there is room, else every k-th; vertical only when the names would collide."""
    step = max(1, math.ceil(len(names) / 80))
    pos = list(range(0, len(names), step))
    crowded = len(names) * (max(map(len, names), default=0) + 2) > 70
    ax.set_xticks(pos, [names[i] for i in pos], rotation=90 if crowded else 0, fontsize=8 if len(names) <= 40 else 7)


def _ratio(bal: dict) -> str:
    return f"max/min {bal['ratio']:.2f}" if bal["ratio"] is not None else "some have no clips"


def digit_counts_figure(per_digit: pd.Series, bal: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    vals = per_digit.to_numpy()
    colors = [WARN if v == bal["min"] and not bal["balanced"] else ACCENT for v in vals]
    _bars(ax, [str(d) for d in per_digit.index], vals, colors)
    ax.axhline(vals.mean(), color=MUTED, ls="--", lw=1, label=f"mean {vals.mean():,.1f}")
    state = "balanced" if bal["balanced"] else "NOT balanced, smallest in red"
    ax.set(title=f"Clips per digit ({state}, {_ratio(bal)})", xlabel="digit", ylabel="clips")
    ax.legend(loc="lower right", framealpha=0.9)
    return fig


def speaker_counts_figure(per_speaker: pd.Series, bal: dict) -> plt.Figure:
    n = len(per_speaker)
    fig, ax = plt.subplots(figsize=(min(18, max(6.4, 0.2 * n + 2)), 3.6))
    vals = per_speaker.to_numpy()
    _bars(ax, [], vals, annotate=n <= 30)
    _speaker_ticks(ax, [str(s) for s in per_speaker.index])
    ax.axhline(vals.mean(), color=MUTED, ls="--", lw=1, label=f"mean {vals.mean():,.1f}")
    ax.set(title=f"Clips per speaker ({n} speakers, {_ratio(bal)})", xlabel="speaker", ylabel="clips")
    ax.legend(loc="lower right", framealpha=0.9)
    return fig


def heatmap_figure(matrix: pd.DataFrame) -> plt.Figure:
    nd, ns = matrix.shape
    fig, ax = plt.subplots(figsize=(min(20, max(6.4, 0.3 * ns + 2.5)), 0.34 * nd + 1.8))
    m = matrix.to_numpy()
    im = ax.imshow(m, cmap="Blues", aspect="auto", vmin=0, vmax=max(1, m.max()))
    ax.grid(False)
    _speaker_ticks(ax, [str(s) for s in matrix.columns])
    ax.set_yticks(range(nd), [str(d) for d in matrix.index])
    if ns <= 30:
        for (i, j), v in np.ndenumerate(m):
            color = WARN if v == 0 else "white" if v > 0.6 * m.max() else "black"
            ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=8 if ns <= 12 else 6.5, color=color)
    missing = int((m == 0).sum())
    ax.set(title="Clips per digit and speaker" + (f" ({missing} empty cells)" if missing else ""),
           xlabel="speaker", ylabel="digit")  # fmt: skip
    fig.colorbar(im, ax=ax, label="clips", fraction=0.03, pad=0.01).locator = MaxNLocator(integer=True)
    return fig


def census_figure(census: dict) -> plt.Figure:
    panels = [
        ("sample_rates", "Sample rate", "sample rate (Hz)", lambda k: f"{int(k):,}"),
        ("channels", "Channels", "channels", lambda k: CHANNELS.get(k, k)),
        ("subtypes", "Sample format", "sample format", lambda k: SUBTYPES.get(k, k)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for ax, (key, title, label, name) in zip(axes, panels):
        items = census[key]
        _bars(ax, [name(k) for k in items], list(items.values()))
        ax.set(title=title, xlabel=label, ylabel="files")
        if len(items) > 3:
            ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Audio formats (from the file headers)", fontweight="bold")
    fig.tight_layout()
    return fig


def length_hist_figure(durations: np.ndarray, window_ms: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.hist(durations, bins=min(60, max(10, len(durations) // 5)), color=ACCENT)
    w = window_ms / 1000
    ax.axvline(w, color=WARN, ls="--", lw=1.2, label=f"training window {w:g} s ({np.mean(durations > w):.1%} longer)")
    ax.set(title=f"Clip length ({durations.min():.2f}–{durations.max():.2f} s, mean {durations.mean():.2f} s)",
           xlabel="duration (s)", ylabel="clips")  # fmt: skip
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.legend(loc="upper right")
    return fig


def length_strip_figure(digits: np.ndarray, durations: np.ndarray, window_ms: int, seed: int = 0) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    order = np.unique(digits)
    pos = np.searchsorted(order, digits) + np.random.default_rng(seed).uniform(-0.3, 0.3, len(digits))
    alpha = float(np.clip(600 / max(len(digits), 1), 0.15, 0.7))
    ax.scatter(pos, durations, s=6, alpha=alpha, color=ACCENT, lw=0, rasterized=True)
    for i, d in enumerate(order):
        mean = durations[digits == d].mean()
        ax.plot([i - 0.38, i + 0.38], [mean, mean], color="black", lw=2.2, solid_capstyle="butt")
        ax.annotate(f"{mean:.2f}", (i, mean), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7.5, bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))  # fmt: skip
    ax.plot([], [], color="black", lw=2.2, label="mean (s)")
    ax.axhline(window_ms / 1000, color=WARN, ls="--", lw=1.2, label=f"training window {window_ms / 1000:g} s")
    ax.set_xticks(range(len(order)), [str(d) for d in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, max(float(durations.max()), window_ms / 1000) * 1.05)
    ax.grid(axis="x", visible=False)
    ax.set(title="Clip length per digit (a dot per clip)", xlabel="digit", ylabel="duration (s)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return fig


def category_figure(counts: dict, title: str, xlabel: str) -> plt.Figure:
    """Speakers per category: vertical bars for a few categories, horizontal (sorted) for many."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) <= 6:
        fig, ax = plt.subplots(figsize=(4.8, 3.3))
        _bars(ax, [k for k, _ in items], [v for _, v in items])
        ax.set(title=title, xlabel=xlabel, ylabel="speakers")
        return fig
    fig, ax = plt.subplots(figsize=(5.6, 0.3 * len(items) + 1.3))
    bars = ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color=ACCENT)
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", visible=False)
    ax.set(title=title, xlabel="speakers", ylabel=xlabel)
    return fig


def age_figure(age: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.8, 3.3))
    vals = np.asarray(age["values"])
    bins = np.arange(math.floor(vals.min() / 5) * 5, math.ceil((vals.max() + 1) / 5) * 5 + 1, 5)
    ax.hist(vals, bins=bins, color=ACCENT, edgecolor="white")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    left_out = [f"{age['unknown'] - age['impossible']} unknown" if age["unknown"] > age["impossible"] else "",
                f"{age['impossible']} impossible" if age["impossible"] else ""]  # fmt: skip
    extra = ", ".join(x for x in left_out if x)
    ax.set(title=f"Speaker age ({age['known']} known" + (f"; {extra} left out" if extra else "") + ")",
           xlabel="age (years)", ylabel="speakers")  # fmt: skip
    return fig


def _threshold_hist(ax: plt.Axes, values, lines: list[tuple[float, str]], title: str, xlabel: str, **kw) -> None:
    ax.hist(values, bins=kw.pop("bins", 50), color=kw.pop("color", ACCENT), **kw)
    for i, (x, label) in enumerate(lines):
        ax.axvline(x, color=WARN, ls="--", lw=1.2, label=label if i == 0 else None)
    ax.set(title=title, xlabel=xlabel, ylabel="clips")
    ax.yaxis.set_major_formatter(THOUSANDS)


def quality_figure(stats: pd.DataFrame, cfg: QualityConfig) -> plt.Figure:
    s = stats.dropna(subset=["rms"])
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 6.4))
    (a, b), (c, d) = axes
    silent = [(cfg.silent_dbfs, f"near-silent below {cfg.silent_dbfs:g} dBFS")]
    _threshold_hist(a, s["rms_dbfs"].clip(lower=-100), silent, "Loudness (RMS, DC removed)", "RMS (dBFS)")
    clipped = int((s["clip_share"] >= cfg.clip_share).sum())
    _threshold_hist(
        b,
        s["peak"],
        [(cfg.clip_level, f"clipped at ≥ {cfg.clip_level:g}")],
        f"Peak level ({clipped:,} flagged as clipping)",
        "peak |sample| (full scale = 1)",
    )
    lim = max(cfg.dc_offset * 1.5, float(s["dc"].abs().max()) if len(s) else 0.0)
    _threshold_hist(
        c,
        s["dc"],
        [(cfg.dc_offset, f"DC offset beyond ±{cfg.dc_offset:g}"), (-cfg.dc_offset, "")],
        "DC offset (mean sample)",
        "mean sample (full scale = 1)",
        bins=np.linspace(-lim, lim, 61),
    )
    c.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
    voiced = s[s["rms_dbfs"] >= cfg.silent_dbfs]
    top = max(float(voiced[["lead_ms", "trail_ms"]].max().max()) if len(voiced) else 0.0, cfg.silence_ms * 1.2)
    bins = np.linspace(0, top * 1.02 + 1, 40)
    d.hist(voiced["trail_ms"], bins=bins, color=SECOND, alpha=0.7, label="trailing")
    _threshold_hist(
        d,
        voiced["lead_ms"],
        [(cfg.silence_ms, f"flagged above {cfg.silence_ms} ms")],
        "Silence before / after the sound",
        "silence (ms)",
        bins=bins,
        alpha=0.7,
        label="leading",
    )
    d.set_yscale("log")
    d.set_ylabel("clips (log scale)")
    d.yaxis.set_major_formatter(THOUSANDS)
    d.yaxis.set_minor_formatter(NullFormatter())
    for ax in axes.flat:
        ax.legend(loc="upper right", framealpha=0.9)
    fig.tight_layout()
    return fig


def examples_figure(examples: dict, meta: dict) -> plt.Figure:
    """Per digit: the training waveform, its log-mel and the SpecAugment-masked log-mel, on one time axis."""
    audio, feats = meta["audio"], meta["features"]
    cols = 3 if any(e["masked"] is not None for e in examples.values()) else 1
    height = 1.5 * len(examples) + 1.2
    fig, axes = plt.subplots(len(examples), cols, figsize=(4.3 * cols + 1, height), squeeze=False, sharex=True)
    fig.subplots_adjust(left=0.08, right=0.9 if cols == 3 else 0.97, top=1 - 0.8 / height, bottom=0.5 / height,
                        wspace=0.22, hspace=0.5)  # fmt: skip
    dur = audio.duration_ms / 1000
    for row, (digit, e) in zip(axes, sorted(examples.items())):
        wave = e["wave"]
        row[0].plot(np.arange(len(wave)) / audio.sample_rate, wave, lw=0.5, color=ACCENT)
        lim = max(1e-3, float(np.abs(wave).max()) * 1.15)
        row[0].set(xlim=(0, dur), ylim=(-lim, lim))
        row[0].set_ylabel(f"digit {digit}", fontsize=11, fontweight="bold")
        row[0].set_title(f"{e['relpath']} (speaker {e['speaker']})", fontsize=8, fontweight="normal", loc="left")
        for ax, key in zip(row[1:], ("feat", "masked")):
            im = ax.imshow(e[key], origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, e[key].shape[0]))
            ax.grid(False)
            ax.set_ylabel("mel band", fontsize=8)
    heads = [f"Waveform as trained on ({audio.sample_rate:,} Hz, {audio.duration_ms} ms window, centred)"]
    if cols == 3:
        heads += [f"Log-mel spectrogram ({feats.n_mels} bands)", "With SpecAugment masks (as in training)"]
        fig.colorbar(im, cax=fig.add_axes((0.92, 0.35, 0.012, 0.3)), label="log-mel, normalised per clip")
    for ax, head in zip(axes[0], heads):
        ax.annotate(head, (0.5, 1.0), xycoords="axes fraction", xytext=(0, 22), textcoords="offset points",
                    ha="center", fontsize=10, fontweight="bold")  # fmt: skip
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.suptitle("One typical clip per digit (duration near the digit's median)", fontweight="bold", fontsize=13,
                 y=1 - 0.15 / height)  # fmt: skip
    return fig


def _figure_plan(a: Analysis) -> list[tuple[str, str, Callable[[], plt.Figure]]]:
    """(name, file, draw) for every figure the analysis has data for, in report order."""
    t, c, cfg, sp = a.catalog.table, a.counts, a.cfg, a.speakers
    dur = t["duration"].to_numpy()
    plan = [
        ("digits", "counts_digit.png", lambda: digit_counts_figure(c["per_digit"], c["balance"]["digits"])),
        ("speakers", "counts_speaker.png", lambda: speaker_counts_figure(c["per_speaker"], c["balance"]["speakers"])),
        ("heatmap", "counts_digit_speaker.png", lambda: heatmap_figure(c["matrix"])),
        ("census", "formats.png", lambda: census_figure(a.census)),
        ("length_hist", "lengths.png", lambda: length_hist_figure(dur, cfg.window_ms)),
        ("length_digit", "lengths_per_digit.png",
         lambda: length_strip_figure(t["digit"].to_numpy(), dur, cfg.window_ms, cfg.seed)),
    ]  # fmt: skip
    for key in ("gender", "age", "accent", "room", "native_speaker"):
        if key == "age" and sp["age"] and sp["age"]["values"]:
            plan.append(("meta_age", "speakers_age.png", partial(age_figure, sp["age"])))
        elif key != "age" and sp[key]:
            draw = partial(category_figure, sp[key], META_TITLES[key], key.replace("_", " "))
            plan.append((f"meta_{key}", f"speakers_{key}.png", draw))
    if a.stats["rms"].notna().any():
        plan.append(("quality", "quality.png", lambda: quality_figure(a.stats, cfg.quality)))
    if a.examples:
        plan.append(("examples", "examples.png", lambda: examples_figure(a.examples, a.examples_meta)))
    return plan


def save_figures(analysis: Analysis, out: Path) -> dict[str, Path]:
    """Draw every figure the analysis has data for into `out`; name -> PNG path, in report order."""
    with plt.rc_context(STYLE):
        return {name: save_figure(draw(), out / file) for name, file, draw in _figure_plan(analysis)}
