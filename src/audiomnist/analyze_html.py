"""Figures and the self-contained report.html of `audiomnist analyze` (PNG figures embedded as data URIs)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .paths import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from .analyze import Analysis

ACCENT = "#3b6ea8"
WARN = "#c0392b"
MUTED = "#8a8f98"
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.axisbelow": True,
}
MAX_LISTED = 200  # files listed per flag in the HTML; flags.csv has them all


def save_figure(fig: plt.Figure, path: Path) -> Path:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _label_bars(ax: plt.Axes, bars, values, fmt: str = "{:d}", fontsize: float = 8) -> None:
    for b, v in zip(bars, values):
        ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    xytext=(0, 2), textcoords="offset points", fontsize=fontsize)  # fmt: skip


def _speaker_ticks(ax: plt.Axes, names: list[str], axis: str = "x") -> None:
    """Every speaker's name when there is room, else every k-th; rotated when many."""
    n = len(names)
    step = max(1, math.ceil(n / 80))
    pos = list(range(0, n, step))
    labels = [names[i] for i in pos]
    rot = 90 if n > 12 or max(map(len, names), default=0) > 6 else 0
    size = 8 if n <= 40 else 7 if n <= 80 else 6
    if axis == "x":
        ax.set_xticks(pos, labels, rotation=rot, fontsize=size)
    else:
        ax.set_yticks(pos, labels, fontsize=size)


def digit_counts_figure(per_digit, bal: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    vals = per_digit.to_numpy()
    colors = [WARN if v == bal["min"] and not bal["balanced"] else ACCENT for v in vals]
    bars = ax.bar([str(d) for d in per_digit.index], vals, color=colors, width=0.7)
    _label_bars(ax, bars, vals)
    ax.axhline(vals.mean(), color=MUTED, ls="--", lw=1, label=f"mean {vals.mean():.0f}")
    state = "balanced" if bal["balanced"] else "not balanced"
    ratio = f"max/min {bal['ratio']:.2f}" if bal["ratio"] is not None else "a digit has no clips"
    ax.set(title=f"Clips per digit ({state}, {ratio})", xlabel="digit", ylabel="clips")
    ax.set_ylim(0, vals.max() * 1.15)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def speaker_counts_figure(per_speaker, bal: dict) -> plt.Figure:
    n = len(per_speaker)
    fig, ax = plt.subplots(figsize=(min(18, max(6.4, 0.2 * n + 2)), 3.6))
    names = [str(s) for s in per_speaker.index]
    vals = per_speaker.to_numpy()
    bars = ax.bar(range(n), vals, color=ACCENT, width=0.75)
    if n <= 30:
        _label_bars(ax, bars, vals, fontsize=7)
    ax.axhline(vals.mean(), color=MUTED, ls="--", lw=1, label=f"mean {vals.mean():.0f}")
    _speaker_ticks(ax, names)
    ax.set_xlim(-0.7, n - 0.3)
    ratio = f"max/min {bal['ratio']:.2f}" if bal["ratio"] is not None else ""
    ax.set(title=f"Clips per speaker ({n} speakers, {ratio})", xlabel="speaker", ylabel="clips")
    ax.set_ylim(0, vals.max() * 1.15)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def heatmap_figure(matrix) -> plt.Figure:
    ns, nd = matrix.shape[1], matrix.shape[0]
    fig, ax = plt.subplots(figsize=(min(20, max(6.4, 0.24 * ns + 2.2)), 0.32 * nd + 1.8))
    m = matrix.to_numpy()
    im = ax.imshow(m, cmap="viridis", aspect="auto", vmin=0, vmax=max(1, m.max()))
    ax.grid(False)
    _speaker_ticks(ax, [str(s) for s in matrix.columns])
    ax.set_yticks(range(nd), [str(d) for d in matrix.index])
    if ns <= 30:
        for i in range(nd):
            for j in range(ns):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < 0.6 * m.max() else "black")  # fmt: skip
    missing = int((m == 0).sum())
    extra = f", {missing} empty cells" if missing else ""
    ax.set(title=f"Clips per digit and speaker{extra}", xlabel="speaker", ylabel="digit")
    fig.colorbar(im, ax=ax, label="clips", fraction=0.03, pad=0.01)
    return fig


def census_figure(census: dict) -> plt.Figure:
    panels = [("sample_rates", "sample rate (Hz)"), ("channels", "channels"), ("subtypes", "sample format")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (key, label) in zip(axes, panels):
        items = census[key]
        bars = ax.bar(list(items), list(items.values()), color=ACCENT, width=0.6)
        _label_bars(ax, bars, list(items.values()))
        ax.set(title=label.capitalize(), xlabel=label, ylabel="files")
        ax.set_ylim(0, max(items.values()) * 1.2)
        if len(items) > 3:
            ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Audio formats (from file headers)", fontweight="bold")
    fig.tight_layout()
    return fig


def length_hist_figure(durations: np.ndarray, window_ms: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.hist(durations, bins=min(60, max(10, len(durations) // 5)), color=ACCENT, alpha=0.9)
    w = window_ms / 1000
    share = float(np.mean(durations > w)) if len(durations) else 0.0
    ax.axvline(w, color=WARN, ls="--", lw=1.2, label=f"window {w:g} s ({share:.1%} longer)")
    ax.set(title=f"Clip lengths ({durations.min():.2f}-{durations.max():.2f} s, mean {durations.mean():.2f} s)",
           xlabel="duration (s)", ylabel="clips")  # fmt: skip
    ax.legend(fontsize=8)
    return fig


def length_strip_figure(digits: np.ndarray, durations: np.ndarray, window_ms: int, seed: int = 0) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    rng = np.random.default_rng(seed)
    order = np.unique(digits)
    pos = np.searchsorted(order, digits)
    alpha = float(np.clip(300 / max(len(digits), 1), 0.08, 0.6))
    ax.scatter(pos + rng.uniform(-0.32, 0.32, len(pos)), durations, s=5, alpha=alpha, color=ACCENT, lw=0,
               rasterized=True)  # fmt: skip
    for i, d in enumerate(order):
        mean = durations[digits == d].mean()
        ax.plot([i - 0.4, i + 0.4], [mean, mean], color="black", lw=2, solid_capstyle="butt")
        ax.annotate(f"{mean:.2f}", (i + 0.42, mean), va="center", fontsize=7)
    ax.plot([], [], color="black", lw=2, label="mean")
    ax.axhline(window_ms / 1000, color=WARN, ls="--", lw=1.2, label=f"window {window_ms / 1000:g} s")
    ax.set_xticks(range(len(order)), [str(d) for d in order])
    ax.set_xlim(-0.6, len(order) - 0.1)
    ax.set(title="Clip length per digit (each dot a clip)", xlabel="digit", ylabel="duration (s)")
    ax.legend(fontsize=8, loc="upper right")
    return fig


def category_figure(counts: dict, title: str, xlabel: str) -> plt.Figure:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    n = len(items)
    if n > 6:
        fig, ax = plt.subplots(figsize=(6.4, 0.28 * n + 1.2))
        bars = ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color=ACCENT)
        for b, (_, v) in zip(bars, items[::-1]):
            ax.annotate(str(v), (b.get_width(), b.get_y() + b.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)  # fmt: skip
        ax.set(title=title, xlabel="speakers")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", visible=False)
    else:
        fig, ax = plt.subplots(figsize=(4.8, 3.2))
        bars = ax.bar([k for k, _ in items], [v for _, v in items], color=ACCENT, width=0.6)
        _label_bars(ax, bars, [v for _, v in items])
        ax.set(title=title, xlabel=xlabel, ylabel="speakers")
        ax.set_ylim(0, max(v for _, v in items) * 1.2)
    return fig


def age_figure(age: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    vals = np.asarray(age["values"])
    bins = np.arange(math.floor(vals.min() / 5) * 5, math.ceil((vals.max() + 1) / 5) * 5 + 1, 5)
    ax.hist(vals, bins=bins, color=ACCENT, edgecolor="white")
    unknown = f", {age['unknown']} unknown" if age["unknown"] else ""
    ax.set(title=f"Speaker age ({age['known']} known{unknown})", xlabel="age (years)", ylabel="speakers")
    return fig


def quality_figure(stats, cfg) -> plt.Figure:
    s = stats.dropna(subset=["rms"])
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.2))
    (a, b), (c, d) = axes
    a.hist(s["rms_dbfs"].clip(lower=-100), bins=50, color=ACCENT)
    a.axvline(cfg.silent_dbfs, color=WARN, ls="--", label=f"near-silent below {cfg.silent_dbfs:g} dBFS")
    a.set(title="Loudness (RMS, DC removed)", xlabel="RMS (dBFS)", ylabel="clips")
    b.hist(s["peak"], bins=50, color=ACCENT)
    b.axvline(cfg.clip_level, color=WARN, ls="--", label=f"clipped at {cfg.clip_level:g}")
    clipped = int((s["clip_share"] >= cfg.clip_share).sum())
    b.set(title=f"Peak level ({clipped} clips flagged as clipping)", xlabel="peak |sample| (full scale = 1)",
          ylabel="clips")  # fmt: skip
    c.hist(s["dc"], bins=50, color=ACCENT)
    for x in (-cfg.dc_offset, cfg.dc_offset):
        c.axvline(x, color=WARN, ls="--", label=f"DC offset beyond ±{cfg.dc_offset:g}" if x > 0 else None)
    c.set(title="DC offset (mean sample)", xlabel="mean sample (full scale = 1)", ylabel="clips")
    top = max(float(s[["lead_ms", "trail_ms"]].max().max()), cfg.silence_ms) if len(s) else 1.0
    bins = np.linspace(0, top * 1.02 + 1, 40)
    d.hist(s["lead_ms"], bins=bins, color=ACCENT, alpha=0.7, label="leading")
    d.hist(s["trail_ms"], bins=bins, color="#e3a33b", alpha=0.7, label="trailing")
    d.axvline(cfg.silence_ms, color=WARN, ls="--", label=f"flagged above {cfg.silence_ms} ms")
    d.set(title="Silence before / after the sound", xlabel="silence (ms)", ylabel="clips")
    for ax in axes.flat:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def examples_figure(examples: dict, meta: dict) -> plt.Figure:
    audio, feats = meta["audio"], meta["features"]
    has_spec = any(e["masked"] is not None for e in examples.values())
    cols = 3 if has_spec else 1
    rows = len(examples)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 1.55 * rows + 0.6), squeeze=False)
    sr = audio.sample_rate
    for r, (digit, e) in enumerate(sorted(examples.items())):
        wave = e["wave"]
        t = np.arange(len(wave)) / sr
        ax = axes[r, 0]
        ax.plot(t, wave, lw=0.5, color=ACCENT)
        lim = max(1e-3, float(np.abs(wave).max()) * 1.1)
        ax.set_ylim(-lim, lim)
        ax.set_xlim(0, len(wave) / sr)
        ax.set_ylabel(f"digit {digit}", fontsize=10, fontweight="bold")
        ax.text(0.01, 0.96, f"{e['relpath']}", transform=ax.transAxes, fontsize=6.5, va="top", color="#444")
        if has_spec:
            dur = len(wave) / sr
            for ax, key in ((axes[r, 1], "feat"), (axes[r, 2], "masked")):
                spec = e[key]
                ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, spec.shape[0]))
                ax.grid(False)
        if r < rows - 1:
            for ax in axes[r]:
                ax.tick_params(labelbottom=False)
    titles = [f"waveform as trained on ({sr} Hz, {audio.duration_ms} ms, centred)"]
    if has_spec:
        titles += [f"log-mel ({feats.n_mels} bands, normalised)", "with SpecAugment masks (as in training)"]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=9)
    for ax, label in zip(axes[-1], ["time (s)"] * cols):
        ax.set_xlabel(label)
    if has_spec:
        for r in range(rows):
            axes[r, 1].set_ylabel("mel band", fontsize=7)
    fig.suptitle("One typical clip per digit (duration closest to the digit's median)", fontweight="bold", y=1.0)
    fig.tight_layout()
    return fig


def save_figures(analysis: Analysis, out: Path) -> dict[str, Path]:
    """Draw every figure the analysis has data for into `out`; name -> PNG path, in report order."""
    t = analysis.catalog.table
    c, cfg = analysis.counts, analysis.cfg
    figs: dict[str, Path] = {}
    with plt.rc_context(STYLE):
        figs["digits"] = save_figure(digit_counts_figure(c["per_digit"], c["balance"]["digits"]), out / "counts_digit.png")
        figs["speakers"] = save_figure(speaker_counts_figure(c["per_speaker"], c["balance"]["speakers"]),
                                       out / "counts_speaker.png")  # fmt: skip
        figs["heatmap"] = save_figure(heatmap_figure(c["matrix"]), out / "counts_digit_speaker.png")
        figs["census"] = save_figure(census_figure(analysis.census), out / "formats.png")
        dur = t["duration"].to_numpy()
        figs["length_hist"] = save_figure(length_hist_figure(dur, cfg.window_ms), out / "lengths.png")
        figs["length_digit"] = save_figure(length_strip_figure(t["digit"].to_numpy(), dur, cfg.window_ms, cfg.seed),
                                           out / "lengths_per_digit.png")  # fmt: skip
        sp = analysis.speakers
        for key, title, label in (("gender", "Speakers by gender", "gender"), ("accent", "Speakers by accent", "accent"),
                                  ("room", "Speakers by recording room", "room"),
                                  ("native_speaker", "Native speakers", "native speaker")):  # fmt: skip
            if sp.get(key):
                figs[f"meta_{key}"] = save_figure(category_figure(sp[key], title, label), out / f"speakers_{key}.png")
            if key == "gender" and sp.get("age"):
                figs["meta_age"] = save_figure(age_figure(sp["age"]), out / "speakers_age.png")
        if analysis.stats["rms"].notna().any():
            figs["quality"] = save_figure(quality_figure(analysis.stats, cfg), out / "quality.png")
        if analysis.examples:
            figs["examples"] = save_figure(examples_figure(analysis.examples, analysis.examples_meta),
                                           out / "examples.png")  # fmt: skip
    return figs


CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#f6f8fa; --accent:#3b6ea8; --ok:#1a7f37; --bad:#c0392b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px 28px 60px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:22px 0; }
h2 { margin:0 0 12px; font-size:19px; border-bottom:1px solid var(--line); padding-bottom:6px; }
h3 { font-size:15px; margin:16px 0 6px; }
table { border-collapse:collapse; font-size:14px; margin:6px 0 10px; }
th, td { text-align:left; padding:5px 12px 5px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; padding-left:12px; }
table.summary th { width:200px; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12.5px; font-weight:600; color:#fff; }
.ok { background:var(--ok); } .bad { background:var(--bad); } .zero { color:var(--muted); }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:14px; }
details { margin:6px 0; } summary { cursor:pointer; font-weight:600; }
code { font:12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background:var(--bg); padding:1px 4px;
       border-radius:4px; }
.note { color:var(--muted); font-size:13px; }
"""


def _esc(x: object) -> str:
    return html.escape(str(x))


def _img(path: Path, alt: str, caption: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">{cap}</figure>'


def _table(header: list[str], rows: list[list[object]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    def cell(tag: str, i: int, v: object) -> str:
        return f'<{tag}{" class=num" if i in numeric else ""}>{v}</{tag}>'

    head = "".join(cell("th", i, _esc(h)) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table{f" class={cls}" if cls else ""}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _badge(ok: bool, yes: str, no: str) -> str:
    return f'<span class="badge {"ok" if ok else "bad"}">{_esc(yes if ok else no)}</span>'


def _counts(d: dict, unit: str = "") -> str:
    return ", ".join(f"{_esc(k)}{unit}: {v:,}" for k, v in d.items())


def render(summary: dict, figures: dict[str, Path]) -> str:
    """report.html from summary.json's dict and the saved figures (embedded, so the page works offline)."""
    from .analyze import FLAGS

    b, L, c, q = summary["balance"], summary["lengths"], summary["census"], summary["quality"]
    sp = summary["speaker_metadata"]
    thr = q["thresholds"]
    fig = {k: v for k, v in figures.items()}
    d, s = b["digits"], b["speakers"]

    def ratio(x: dict) -> str:
        return f"{x['ratio']:.2f}" if x["ratio"] is not None else "∞"

    flagged = {k: v for k, v in q["counts"].items() if v}
    summary_rows = [
        ["Dataset", f"<code>{_esc(summary['root'])}</code> ({_esc(summary['layout'])} layout)"],
        ["Clips", f"{summary['files']:,} usable" + (f", {q['counts']['unreadable']} unreadable" if q["counts"]["unreadable"] else "")],
        ["Speakers", f"{summary['speakers']}"],
        ["Digits", f"{summary['digits']} ({d['min']:,}–{d['max']:,} clips each)"],
        ["Balance (digits)", _badge(d["balanced"], "balanced", "not balanced")
         + f" max/min {ratio(d)} (tolerance {b['tolerance']:.0%})"
         + ("" if d["balanced"] else f"; fewest: {_esc(', '.join(d['smallest']))}, most: {_esc(', '.join(d['largest']))}")],
        ["Balance (speakers)", _badge(s["balanced"], "balanced", "not balanced") + f" max/min {ratio(s)}"
         + (f"; {b['missing_digit_speaker_pairs']} digit/speaker pairs without clips" if b["missing_digit_speaker_pairs"] else "")],
        ["Sample rates", _counts(c["sample_rates"], " Hz")],
        ["Channels", _counts(c["channels"])],
        ["Sample formats", _counts(c["subtypes"])],
        ["Clip length", f"{L['min']:.2f}–{L['max']:.2f} s, mean {L['mean']:.2f} s, total {L['total_hours']:.2f} h"],
        [f"Longer than {L['window_ms']} ms", f"{L['longer_than_window']:,} ({L['longer_than_window_share']:.1%})"],
        ["Speaker metadata", ", ".join(k.replace("_", " ") for k in ("gender", "age", "accent", "room", "native_speaker")
                                       if sp.get(k)) or "none"],
        ["Quality flags", _badge(not flagged, "none", f"{sum(flagged.values())} flags")
         + (" " + ", ".join(f"{_esc(k.replace('_', ' '))}: {v}" for k, v in flagged.items()) if flagged else "")],
    ]  # fmt: skip

    per_digit = summary["lengths"]["per_digit"]
    length_rows = [
        [_esc(dg), f"{r['count']:,}", f"{r['min']:.2f}", f"{r['mean']:.2f}", f"{r['median']:.2f}", f"{r['max']:.2f}",
         f"{r['longer_than_window']:.1%}"]
        for dg, r in per_digit.items()
    ]  # fmt: skip

    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">',
        f"<title>Dataset report: {_esc(Path(summary['root']).name)}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>Dataset report: {_esc(Path(summary['root']).name)}</h1>"
        f"<p>{_esc(summary['root'])} · generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by audiomnist analyze</p></header>",
        "<section><h2>Summary</h2>",
        _table(["", ""], summary_rows, cls="summary").replace("<thead><tr><th></th><th></th></tr></thead>", ""),
        "</section>",
        "<section><h2>Counts</h2>",
        f'<p class="note">Balanced means every digit has the same number of clips within {b["tolerance"]:.0%} '
        "(max/min count ratio); speakers are reported the same way.</p>",
        _img(fig["digits"], "clips per digit"),
        _img(fig["speakers"], "clips per speaker"),
        _img(fig["heatmap"], "clips per digit and speaker"),
        "</section>",
        "<section><h2>Audio formats</h2>",
        _img(fig["census"], "sample rates, channels and sample formats"),
        _table(["format", "files"], [[_esc(k), f"{v:,}"] for k, v in c["formats"].items()], numeric={1}),
        "</section>",
        "<section><h2>Clip lengths</h2>",
        '<div class="grid">' + _img(fig["length_hist"], "clip length histogram")
        + _img(fig["length_digit"], "clip length per digit") + "</div>",
        _table(["digit", "clips", "min (s)", "mean (s)", "median (s)", "max (s)", f"> {L['window_ms']} ms"],
               length_rows, numeric={1, 2, 3, 4, 5, 6}),  # fmt: skip
        "</section>",
    ]
    meta_figs = [k for k in ("meta_gender", "meta_age", "meta_accent", "meta_room", "meta_native_speaker") if k in fig]
    parts.append("<section><h2>Speakers</h2>")
    if meta_figs:
        parts.append('<div class="grid">' + "".join(_img(fig[k], k[5:].replace("_", " ")) for k in meta_figs) + "</div>")
        absent = [k.replace("_", " ") for k in ("gender", "age", "accent", "room", "native_speaker") if not sp.get(k)]
        if absent:
            parts.append(f'<p class="note">Not in this dataset\'s metadata: {_esc(", ".join(absent))}.</p>')
        if sp.get("age"):
            a = sp["age"]
            parts.append(
                f'<p class="note">Ages {a["min"]:g}–{a["max"]:g} (mean {a["mean"]:g}) for {a["known"]} speakers; '
                f'{a["unknown"]} unknown, of which {a["impossible"]} had an impossible age in the metadata file.</p>'
            )
    else:
        parts.append('<p class="note">No speaker metadata (gender, age, accent, room) was found for this dataset.</p>')
    parts.append("</section>")
    if "examples" in fig:
        parts += [
            "<section><h2>Examples: what the model sees</h2>",
            '<p class="note">Built with the training code (audio.load_clip, features.build_frontend, '
            "features.spec_augment) and the default training configuration; waveform augmentation is not shown.</p>",
            _img(fig["examples"], "one example per digit"),
            "</section>",
        ]
    parts.append("<section><h2>Data quality</h2>")
    parts.append(
        f'<p class="note">Clipping: at least {thr["clip_share"]:.1%} of samples at or above {thr["clip_level"]:g} of full '
        f'scale. Near-silent: RMS below {thr["silent_dbfs"]:g} dBFS. DC offset: mean sample beyond ±{thr["dc_offset"]:g}. '
        f'Silence: {thr["frame_ms"]} ms frames more than {-thr["silence_db"]:g} dB below the clip\'s loudest frame, '
        f'flagged when longer than {thr["silence_ms"]} ms. Duplicates: identical decoded samples. Statistics are taken '
        f'from the first {thr["max_seconds"]:g} s of audio at {summary["analysis_audio"]["sample_rate"]} Hz.</p>'
    )
    if "quality" in fig:
        parts.append(_img(fig["quality"], "quality statistics"))
    parts.append(_table(["check", "files"], [
        [_esc(FLAGS[k]), f'<span class="{"" if v else "zero"}">{v:,}</span>'] for k, v in q["counts"].items()
    ], numeric={1}))  # fmt: skip
    for key, files in q["files"].items():
        if not files:
            continue
        rows = [[f"<code>{_esc(f['relpath'])}</code>", _esc(f["detail"])] for f in files[:MAX_LISTED]]
        more = f'<p class="note">… and {len(files) - MAX_LISTED:,} more in flags.csv</p>' if len(files) > MAX_LISTED else ""
        parts.append(f"<details{' open' if len(files) <= 20 else ''}><summary>{_esc(FLAGS[key])}: {len(files):,}</summary>"
                     + _table(["file", "detail"], rows) + more + "</details>")  # fmt: skip
    parts.append("</section>")
    notes = summary.get("notes") or []
    audio = summary["analysis_audio"]
    parts += [
        "<section><h2>About this report</h2>",
        f'<p class="note">Audio was read through a separate analysis cache ({audio["sample_rate"]} Hz, '
        f'{audio["duration_ms"]} ms window, {_esc(audio["cache_dtype"])}) at <code>{_esc(summary["analysis_cache"])}</code>; '
        "the training cache is not touched. Files: summary.json (all numbers), per_file.csv (statistics of every clip), "
        "flags.csv (every flagged file), and the PNG figures.</p>",
    ]
    if notes:
        parts.append("<h3>Catalog notes</h3><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section></main></body></html>")
    return "\n".join(parts)
