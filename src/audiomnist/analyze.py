"""`audiomnist analyze`: what is in a dataset and what is wrong with it, as numbers, figures and one HTML page.

The analysis is plain functions returning dicts and DataFrames; analyze_quality.py holds the data-quality
checks, analyze_figures.py and analyze_html.py draw the result. Audio comes through its own waveform cache
(not the training one): the files' own rate up to max_rate and a window that holds the longest clip, because
clipping, DC offset and silence need the whole clip. A second run over the same files takes seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import analyze_figures, analyze_html
from .analyze_quality import QualityConfig, clip_stats, quality_flags
from .analyze_result import Analysis, AnalyzeConfig
from .audio import AudioConfig
from .cache import WaveformCache
from .catalog import Catalog, combine, scan
from .errors import AudiomnistError
from .features import FeatureConfig, SpecAugmentConfig, build_frontend, spec_augment
from .paths import atomic_write, atomic_write_text
from .placement import load_clip
from .runconfig import TrainConfig
from .sources import LAYOUTS, UNKNOWN

_INVALID_AGE = re.compile(r"^speaker (\S+): invalid age (.+) -> unknown$")


def natural_key(s: object) -> tuple:
    """'2' < '10' < 'anna': numbers by value, then names."""
    s = str(s)
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def balance(counts: pd.Series, tolerance: float) -> dict:
    """max/min ratio of counts; balanced when the ratio is within 1 + tolerance."""
    counts = counts.astype(int)
    lo, hi = (int(counts.min()), int(counts.max())) if len(counts) else (0, 0)
    ratio = hi / lo if lo else math.inf if hi else 1.0
    return {
        "min": lo,
        "max": hi,
        "ratio": round(ratio, 4) if math.isfinite(ratio) else None,
        "balanced": bool(len(counts) > 0 and ratio <= 1 + tolerance),
        "smallest": [str(k) for k in counts.index[counts == lo]],
        "largest": [str(k) for k in counts.index[counts == hi]],
    }


def count_summary(table: pd.DataFrame, tolerance: float = 0.05) -> dict:
    """Clips per digit, per speaker and per digit x speaker, and whether digits and speakers are balanced."""
    per_digit = table["digit"].value_counts().sort_index()
    per_speaker = table["speaker"].value_counts()
    per_speaker = per_speaker.reindex(sorted(per_speaker.index, key=natural_key))
    matrix = pd.crosstab(table["digit"], table["speaker"])
    matrix = matrix.reindex(index=per_digit.index, columns=per_speaker.index, fill_value=0)
    digits, speakers = balance(per_digit, tolerance), balance(per_speaker, tolerance)
    return {
        "per_digit": per_digit,
        "per_speaker": per_speaker,
        "matrix": matrix,
        "balance": {
            "tolerance": tolerance,
            "balanced": digits["balanced"],
            "digits": digits,
            "speakers": speakers,
            "missing_digit_speaker_pairs": int((matrix.to_numpy() == 0).sum()),
        },
    }


def census(table: pd.DataFrame) -> dict:
    """Files per sample rate, channel count, container format and sample subtype (from the headers)."""

    def counts(col: str) -> dict:
        return {str(k): int(v) for k, v in sorted(table[col].value_counts().items(), key=lambda kv: natural_key(kv[0]))}

    return {"sample_rates": counts("sample_rate"), "channels": counts("channels"),
            "formats": counts("format"), "subtypes": counts("subtype")}  # fmt: skip


def length_summary(table: pd.DataFrame, window_ms: int) -> dict:
    """Clip durations (from the headers): overall and per digit min/mean/max, and the share longer than the window."""
    dur = table["duration"]
    long = dur > window_ms / 1000
    per_digit = table.groupby("digit")["duration"].agg(["count", "min", "mean", "median", "max"])
    per_digit["longer_than_window"] = long.groupby(table["digit"]).mean()
    n = len(dur)
    return {
        "window_ms": window_ms,
        **{k: float(getattr(dur, k)()) if n else 0.0 for k in ("min", "mean", "median", "max")},
        "total_hours": float(dur.sum() / 3600),
        "longer_than_window": int(long.sum()),
        "longer_than_window_share": float(long.mean()) if n else 0.0,
        "per_digit": per_digit.astype({"count": int}).round(4),
    }


def invalid_ages(notes: list[str], speakers: set[str]) -> dict[str, str]:
    """speaker -> the age value the catalog dropped as impossible (from its notes), for speakers in the data."""
    found = (_INVALID_AGE.match(n) for n in notes)
    return {m.group(1): m.group(2).strip("'\"") for m in found if m and m.group(1) in speakers}


def age_summary(ages: pd.Series, invalid: dict[str, str]) -> dict | None:
    """Known ages per speaker, and how many were missing or impossible (None when no speaker has an age at all)."""
    known = ages.dropna()
    if known.empty and not invalid:
        return None
    return {
        "known": len(known),
        "unknown": int(ages.isna().sum()),
        "impossible": len(invalid),
        "impossible_values": invalid,
        "min": float(known.min()) if len(known) else None,
        "mean": round(float(known.mean()), 2) if len(known) else None,
        "max": float(known.max()) if len(known) else None,
        "values": [float(a) for a in known.sort_values()],
    }


def speaker_summary(table: pd.DataFrame, notes: list[str] = ()) -> dict:
    """Speaker metadata counted per speaker; a field known for no speaker is None (the report leaves it out).
    Impossible ages (dropped by the catalog, listed in its notes) count as unknown and are reported by speaker."""
    speakers = table.drop_duplicates("speaker").set_index("speaker")
    out: dict[str, Any] = {"speakers": len(speakers)}
    for col in ("gender", "accent", "room", "native_speaker"):
        values = speakers[col].astype(str)
        out[col] = None if (values == UNKNOWN).all() else {str(k): int(v) for k, v in values.value_counts().items()}
    out["age"] = age_summary(speakers["age"], invalid_ages(list(notes), set(speakers.index)))
    return out


def analysis_audio_config(table: pd.DataFrame, max_seconds: float = 4.0, max_rate: int = 16000) -> AudioConfig:
    """The analysis cache's config: the files' most common rate (ties to the higher, at most max_rate) and a window
    that holds the longest clip (rounded up to 100 ms, at most max_seconds), so nothing is cropped."""
    if table.empty:
        raise AudiomnistError("no usable audio files to analyse")
    rates = table["sample_rate"].value_counts()
    rate = min(int(rates[rates == rates.max()].index.max()), max_rate)
    duration_ms = int(min(math.ceil((float(table["duration"].max()) + 0.005) * 10) * 100, max_seconds * 1000))
    return AudioConfig(sample_rate=rate, duration_ms=max(duration_ms, 100), max_seconds=max(30.0, max_seconds))


def training_view() -> tuple[AudioConfig, FeatureConfig, SpecAugmentConfig]:
    """Audio, feature and SpecAugment config of a default training run."""
    t = TrainConfig()
    return t.audio, t.features, t.specaug


def pick_examples(
    table: pd.DataFrame, ok: np.ndarray, clean: np.ndarray | None = None, candidates: int = 20
) -> dict[int, int]:
    """Per digit a decodable, typical row: unflagged (`clean`) where the digit has one, duration near the digit's
    median, from as many speakers as possible (the closest of the `candidates` nearest whose speaker is new)."""
    ok = np.asarray(ok, bool)
    clean = ok & (np.asarray(clean, bool) if clean is not None else True)
    out: dict[int, int] = {}
    used: set[str] = set()
    for digit, g in table[ok].groupby("digit"):
        g = g[clean[g.index]] if clean[g.index].any() else g
        near = (g["duration"] - g["duration"].median()).abs().sort_values(kind="stable").index[:candidates]
        fresh = [r for r in near if table["speaker"].at[r] not in used]
        row = int(fresh[0] if fresh else near[0])
        out[int(digit)] = row
        used.add(table["speaker"].at[row])
    return out


def example_views(paths: list[str], seed: int = 0) -> dict:
    """What training makes of `paths`: the fitted waveform, its features and the SpecAugment-masked features,
    built with the training code itself (load_clip, build_frontend, spec_augment) and the default TrainConfig."""
    audio_cfg, feat_cfg, spec_cfg = training_view()
    waves = torch.stack([load_clip(p, audio_cfg) for p in paths])
    frontend = build_frontend(feat_cfg, audio_cfg.sample_rate).eval()
    with torch.no_grad():
        feats = frontend(waves)
        masked = spec_augment(feats, spec_cfg, torch.Generator().manual_seed(seed)) if feats.dim() == 4 else None
    return {
        "audio": audio_cfg,
        "features": feat_cfg,
        "specaug": spec_cfg,
        "waves": waves.numpy(),
        "feats": feats[:, 0].numpy(),
        "masked": masked[:, 0].numpy() if masked is not None else None,
    }


def _examples(table: pd.DataFrame, ok: np.ndarray, clean: np.ndarray, seed: int) -> tuple[dict, dict]:
    rows = pick_examples(table, ok, clean)
    if not rows:
        return {}, {}
    views = example_views([table["path"].iat[r] for r in rows.values()], seed)
    examples = {
        digit: {
            "relpath": table["relpath"].iat[r],
            "speaker": table["speaker"].iat[r],
            "duration": float(table["duration"].iat[r]),
            "wave": views["waves"][i],
            "feat": views["feats"][i],
            "masked": None if views["masked"] is None else views["masked"][i],
        }
        for i, (digit, r) in enumerate(rows.items())
    }
    return examples, {k: views[k] for k in ("audio", "features", "specaug")}


def _catalog(paths: list[str | os.PathLike], layout: str | None, progress: bool) -> Catalog:
    catalog = combine([scan(p, layout=layout, progress=progress) for p in paths])
    if catalog.table.empty:
        reasons = "; ".join(catalog.skipped["reason"].head(3))
        where = ", ".join(map(str, paths))
        raise AudiomnistError(f"no usable audio files under {where}" + (f" ({reasons})" if reasons else ""))
    return catalog


def analyze(
    paths: list[str | os.PathLike],
    layout: str | None = None,
    cfg: AnalyzeConfig = AnalyzeConfig(),
    progress: bool = True,
    examples: bool = True,
) -> Analysis:
    """Scan `paths`, build (or load) the analysis cache and compute every table of the report."""
    if cfg.window_ms is None:
        cfg = replace(cfg, window_ms=training_view()[0].duration_ms)
    catalog = _catalog(paths, layout, progress)
    t = catalog.table
    audio = analysis_audio_config(t, cfg.max_seconds, cfg.max_rate)
    cache = WaveformCache.for_catalog(catalog, audio, progress=progress)
    stats = clip_stats(cache, cfg.quality, progress=progress)
    flags = quality_flags(catalog, cache, stats, cfg.quality)
    clean = ~t["path"].isin(flags["path"]).to_numpy()
    shown, meta = _examples(t, cache.ok, clean, cfg.seed) if examples else ({}, {})
    return Analysis(
        catalog=catalog,
        cfg=cfg,
        audio=audio,
        cache_dir=cache.dir,
        decoded=int(np.count_nonzero(cache.ok)),
        counts=count_summary(t, cfg.balance_tolerance),
        census=census(t),
        lengths=length_summary(t, cfg.window_ms),
        speakers=speaker_summary(t, catalog.notes),
        stats=stats,
        flags=flags,
        examples=shown,
        examples_meta=meta,
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o) if np.isfinite(o) else None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_report(analysis: Analysis, out: str | os.PathLike) -> Path:
    """Write the PNG figures, per_file.csv, flags.csv, summary.json and report.html into `out`; return report.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = analysis.catalog.table
    columns = ["relpath", "digit", "speaker", "sample_rate", "channels", "duration"]
    per_file = pd.concat([t[columns], analysis.stats], axis=1)
    with atomic_write(out / "per_file.csv", "w") as f:
        per_file.to_csv(f, index=False)
    with atomic_write(out / "flags.csv", "w") as f:
        analysis.flags.to_csv(f, index=False)
    summary = analysis.summary()
    figures = analyze_figures.save_figures(analysis, out)
    summary["figures"] = {name: path.name for name, path in figures.items()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    atomic_write_text(out / "report.html", analyze_html.render(summary, figures))
    return out / "report.html"


def headline(summary: dict) -> str:
    """A few lines for the terminal: size, balance, formats, lengths and flag counts."""
    b, L, c = summary["balance"], summary["lengths"], summary["census"]
    d = b["digits"]
    bal = "balanced" if b["balanced"] else f"NOT balanced (max/min {d['ratio'] or 'inf'})"
    rates = ", ".join(f"{k} Hz: {v}" for k, v in c["sample_rates"].items())
    channels = ", ".join(f"{k}: {v}" for k, v in c["channels"].items())
    flags = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary["quality"]["counts"].items() if v) or "none"
    return "\n".join([
        f"{summary['root']}: {summary['layout']} layout, {summary['files']} clips, {summary['speakers']} speakers, "
        f"{summary['digits']} digits ({d['min']}-{d['max']} per digit, {bal})",
        f"  sample rates: {rates}; channels: {channels}",
        f"  lengths: {L['min']:.2f}-{L['max']:.2f} s (mean {L['mean']:.2f} s), "
        f"{L['longer_than_window_share']:.1%} longer than {L['window_ms']} ms",
        f"  flags: {flags}",
    ])  # fmt: skip


def _cmd_analyze(args: argparse.Namespace) -> int:
    cfg = AnalyzeConfig(window_ms=args.window_ms, max_seconds=args.max_seconds, seed=args.seed,
                        quality=QualityConfig(silence_ms=args.silence_ms))  # fmt: skip
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(args.path[0]).resolve().name) or "data"
    out = Path(args.out) if args.out else Path("analysis") / name
    analysis = analyze(args.path, layout=args.layout, cfg=cfg, progress=not args.no_progress)
    report = write_report(analysis, out)
    print(headline(analysis.summary()))
    print(f"report: {report.resolve()}")
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Analyse a dataset folder and write report.html (self-contained), PNG figures, summary.json, "
        "per_file.csv and flags.csv. Audio goes through a separate analysis cache; a second run takes seconds."
    )
    p.add_argument("path", nargs="+", help="dataset folder(s)")
    p.add_argument("--out", help="report folder (default: ./analysis/<folder name>)")
    p.add_argument("--layout", choices=["auto", *LAYOUTS], default="auto", help="file naming scheme (default: detect)")
    p.add_argument("--window-ms", type=int, help="report clips longer than this (default: the training window)")
    p.add_argument("--silence-ms", type=int, default=300, help="flag leading/trailing silence longer than this")
    p.add_argument("--max-seconds", type=float, default=4.0, help="analyse at most this much of each clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the example SpecAugment masks")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_analyze)
