"""`audiomnist analyze`: what is in a dataset and what is wrong with it, as numbers, figures and one HTML page.

The analysis is plain functions that return dicts and DataFrames (tested on their own); analyze_html.py draws
them. Audio comes through its own waveform cache, separate from the training cache: native sample rate and a
window long enough that clips are not cropped (up to max_seconds), because clipping, DC offset and silence
need the original samples. Per-file statistics are saved inside that cache folder, so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .audio import AudioConfig, load_clip
from .cache import INT16_SCALE, WaveformCache
from .catalog import Catalog, combine, scan
from .config import to_dict
from .errors import AudiomnistError
from .features import FeatureConfig, SpecAugmentConfig, build_frontend, spec_augment
from .paths import atomic_write, atomic_write_text, short_hash
from .sources import LAYOUTS, UNKNOWN, digit_from_word

STATS_VERSION = 1
STATS_CHUNK_SAMPLES = 1 << 22  # samples per vectorised chunk (16 MB as float32)
FLAGS = {
    "unreadable": "unreadable files (skipped by the scan or failed to decode)",
    "name": "label/name problems (speaker in the name differs from its folder, no digit 0-9 in the name, ...)",
    "duplicate": "duplicate audio (identical decoded samples)",
    "clipping": "clipping",
    "near_silent": "near-silent clips",
    "dc_offset": "DC offset",
    "leading_silence": "long leading silence",
    "trailing_silence": "long trailing silence",
}
META_FIELDS = ("gender", "age", "accent", "room", "native_speaker")
_NO_LABEL = "no digit label"


@dataclass(frozen=True)
class AnalyzeConfig:
    """Thresholds of the report. Levels are fractions of full scale; dB values are dBFS unless said otherwise."""

    window_ms: int = 1000  # the training window: the report says how many clips are longer
    silence_ms: int = 300  # flag leading/trailing silence longer than this
    balance_tolerance: float = 0.05  # balanced when max/min count per digit <= 1 + tolerance
    clip_level: float = 0.99  # a sample at or above this |level| counts as clipped
    clip_share: float = 0.001  # flag clips with at least this share of clipped samples
    silent_dbfs: float = -60.0  # flag clips whose RMS (DC removed) is below this
    dc_offset: float = 0.01  # flag clips whose mean sample is further than this from zero
    silence_db: float = -40.0  # a 10 ms frame this far below the clip's loudest frame is silence
    frame_ms: int = 10
    max_seconds: float = 4.0  # longest stretch of a clip the analysis cache keeps
    seed: int = 0  # SpecAugment masks of the examples

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.silence_ms < 0 or self.frame_ms <= 0 or self.max_seconds <= 0:
            raise AudiomnistError("analyze: window_ms, frame_ms and max_seconds must be positive, silence_ms >= 0")
        if not 0 < self.clip_level <= 1 or not 0 < self.clip_share <= 1:
            raise AudiomnistError("analyze: clip_level and clip_share must be in (0, 1]")


@dataclass
class Analysis:
    """Everything the report shows; `stats` has one row per catalog row (NaN where the file failed to decode)."""

    catalog: Catalog
    cfg: AnalyzeConfig
    audio: AudioConfig
    cache_dir: Path
    counts: dict
    census: dict
    lengths: dict
    speakers: dict
    stats: pd.DataFrame
    flags: pd.DataFrame
    examples: dict = field(default_factory=dict)  # digit -> relpath, speaker, wave, feat, masked
    examples_meta: dict = field(default_factory=dict)  # audio/features/specaug configs the examples used

    def summary(self) -> dict:
        """JSON-ready numbers of the whole report (summary.json)."""
        t = self.catalog.table
        c = self.counts
        flag_counts = self.flags["flag"].value_counts()
        return {
            "root": str(self.catalog.root),
            "layout": self.catalog.layout,
            "files": len(t),
            "speakers": int(t["speaker"].nunique()),
            "digits": len(c["per_digit"]),
            "balance": c["balance"],
            "per_digit": {str(k): int(v) for k, v in c["per_digit"].items()},
            "per_speaker": {str(k): int(v) for k, v in c["per_speaker"].items()},
            "digit_by_speaker": {
                str(s): {str(d): int(n) for d, n in col.items()} for s, col in c["matrix"].items()
            },
            "census": self.census,
            "lengths": {
                **{k: v for k, v in self.lengths.items() if k != "per_digit"},
                "per_digit": {str(d): r for d, r in self.lengths["per_digit"].to_dict("index").items()},
            },
            "speaker_metadata": self.speakers,
            "quality": {
                "thresholds": {k: v for k, v in to_dict(self.cfg).items() if k not in ("seed",)},
                "counts": {name: int(flag_counts.get(name, 0)) for name in FLAGS},
                "files": {
                    name: self.flags.loc[self.flags["flag"] == name, ["relpath", "detail"]].to_dict("records")
                    for name in FLAGS
                },
            },
            "examples": {str(d): e["relpath"] for d, e in self.examples.items()},
            "analysis_audio": to_dict(self.audio),
            "analysis_cache": str(self.cache_dir),
            "notes": list(self.catalog.notes),
        }


def natural_key(s: str) -> tuple:
    """'2' < '10' < 'anna': numbers by value, then names."""
    return (0, int(s), "") if str(s).isdigit() else (1, 0, str(s))


def balance(counts: pd.Series, tolerance: float) -> dict:
    """max/min ratio of non-negative counts; balanced when the ratio is within 1 + tolerance."""
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
    matrix = pd.crosstab(table["digit"], table["speaker"]).reindex(
        index=per_digit.index, columns=per_speaker.index, fill_value=0
    )
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
        vc = table[col].value_counts()
        return {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: natural_key(str(kv[0])))}

    return {
        "sample_rates": counts("sample_rate"),
        "channels": counts("channels"),
        "formats": counts("format"),
        "subtypes": counts("subtype"),
    }


def length_summary(table: pd.DataFrame, window_ms: int) -> dict:
    """Clip durations (from the headers): overall and per digit min/mean/max, and the share longer than the window."""
    window = window_ms / 1000
    dur = table["duration"]
    per_digit = table.groupby("digit")["duration"].agg(
        count="count", min="min", mean="mean", median="median", max="max"
    )
    per_digit["longer_than_window"] = table.assign(long=dur > window).groupby("digit")["long"].mean()
    per_digit = per_digit.astype({"count": int}).round(4)
    n = len(dur)
    return {
        "window_ms": window_ms,
        "min": float(dur.min()) if n else 0.0,
        "mean": float(dur.mean()) if n else 0.0,
        "median": float(dur.median()) if n else 0.0,
        "max": float(dur.max()) if n else 0.0,
        "total_hours": float(dur.sum() / 3600),
        "longer_than_window": int((dur > window).sum()),
        "longer_than_window_share": float((dur > window).mean()) if n else 0.0,
        "per_digit": per_digit,
    }


def speaker_summary(table: pd.DataFrame, notes: list[str] = ()) -> dict:
    """Speaker metadata counted per speaker; a field known for no speaker is None (the report skips it).

    The catalog turns impossible ages into NaN and says so in its notes; both missing and impossible ages
    count as unknown, and the impossible ones are counted from the notes.
    """
    speakers = table.drop_duplicates("speaker").set_index("speaker")
    out: dict[str, Any] = {"speakers": len(speakers)}
    for col in ("gender", "accent", "room", "native_speaker"):
        values = speakers[col].astype(str)
        if (values == UNKNOWN).all():
            out[col] = None
            continue
        vc = values.value_counts()
        out[col] = {str(k): int(v) for k, v in vc.items()}
    ages = speakers["age"]
    known = ages.dropna()
    if known.empty:
        out["age"] = None
    else:
        impossible = sum(1 for n in notes if "impossible age" in n)
        out["age"] = {
            "known": len(known),
            "unknown": int(ages.isna().sum()),
            "impossible": impossible,
            "min": float(known.min()),
            "mean": round(float(known.mean()), 2),
            "max": float(known.max()),
            "values": [float(a) for a in known.sort_values()],
        }
    return out


def analysis_audio_config(table: pd.DataFrame, max_seconds: float = 4.0) -> AudioConfig:
    """The analysis cache's config: the files' own rate (the most common one if mixed, ties to the higher),
    and a window that holds the longest clip (rounded up to 100 ms, at most max_seconds), so nothing is cropped."""
    if table.empty:
        raise AudiomnistError("no usable audio files to analyse")
    rates = table["sample_rate"].value_counts()
    rate = int(rates[rates == rates.max()].index.max())
    longest = float(table["duration"].max())
    duration_ms = int(min(math.ceil((longest + 0.005) * 10) * 100, max_seconds * 1000))
    return AudioConfig(sample_rate=rate, duration_ms=max(duration_ms, 100), max_seconds=max(30.0, max_seconds))


def _as_float(raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.float32) * np.float32(1 / INT16_SCALE) if raw.dtype == np.int16 else raw.astype(np.float32)


def compute_clip_stats(waves: np.ndarray, lengths: np.ndarray, sample_rate: int, cfg: AnalyzeConfig) -> pd.DataFrame:
    """Per row of left-aligned clips (B, L) with `lengths`: rms and dc, peak, clipped share, leading/trailing
    silence in ms and a hash of the samples. Vectorised over the whole block; rms and silence ignore the DC."""
    raw = np.asarray(waves)
    B, L = raw.shape
    n = np.asarray(lengths, dtype=np.int64)
    x = _as_float(raw)
    valid = np.arange(L)[None, :] < n[:, None]
    count = np.maximum(n, 1).astype(np.float64)
    dc = x.sum(axis=1, dtype=np.float64) / count
    x = np.where(valid, x - dc[:, None].astype(np.float32), np.float32(0))
    rms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64) / count)
    absx = np.abs(x + dc[:, None].astype(np.float32))
    peak = np.where(n > 0, np.where(valid, absx, 0).max(axis=1), 0.0)
    clipped = (valid & (absx >= cfg.clip_level)).sum(axis=1) / count

    fl = max(1, round(sample_rate * cfg.frame_ms / 1000))
    nf = -(-L // fl)
    frames = np.pad(x, ((0, 0), (0, nf * fl - L))).reshape(B, nf, fl)
    frame_rms = np.sqrt(np.einsum("ijk,ijk->ij", frames, frames) / fl)
    floor = 10 ** (min(cfg.silent_dbfs, -60.0) / 20)
    threshold = np.maximum(frame_rms.max(axis=1) * 10 ** (cfg.silence_db / 20), floor)
    frame_valid = (np.arange(nf)[None, :] * fl) < n[:, None]
    loud = (frame_rms > threshold[:, None]) & frame_valid
    anyloud = loud.any(axis=1)
    first = loud.argmax(axis=1)
    last = nf - 1 - loud[:, ::-1].argmax(axis=1)
    lead = np.where(anyloud, np.minimum(first * fl, n), n)
    trail = np.where(anyloud, np.maximum(n - (last + 1) * fl, 0), n)

    hashes = [
        hashlib.blake2b(np.ascontiguousarray(raw[i, : n[i]]).tobytes(), digest_size=10).hexdigest() if n[i] else ""
        for i in range(B)
    ]
    ms = 1000.0 / sample_rate
    return pd.DataFrame({
        "rms": rms,
        "rms_dbfs": 20 * np.log10(np.maximum(rms, 1e-6)),
        "peak": peak.astype(np.float64),
        "dc": dc,
        "clip_share": clipped,
        "lead_ms": lead * ms,
        "trail_ms": trail * ms,
        "hash": hashes,
    })  # fmt: skip


def _stats_params(cfg: AnalyzeConfig) -> tuple:
    return (STATS_VERSION, cfg.clip_level, cfg.silence_db, cfg.silent_dbfs, cfg.frame_ms)


def clip_stats(cache: WaveformCache, cfg: AnalyzeConfig, progress: bool = True) -> pd.DataFrame:
    """compute_clip_stats over every cache row in chunks, saved in the cache folder (keyed by cache key and the
    thresholds that shape the numbers) so the next run only reads them back. Failed rows are NaN."""
    path = cache.dir / f"analysis-stats-{short_hash(cache.key, _stats_params(cfg))}.csv"
    if path.is_file():
        try:
            stats = pd.read_csv(path, dtype={"hash": str}, keep_default_na=False, na_values={
                c: ["", "nan", "NaN"] for c in ("rms", "rms_dbfs", "peak", "dc", "clip_share", "lead_ms", "trail_ms")
            })  # fmt: skip
            if len(stats) == len(cache):
                return stats
        except (OSError, ValueError, pd.errors.ParserError):
            pass
    N, L = cache.waves.shape
    chunk = max(1, STATS_CHUNK_SAMPLES // max(L, 1))
    parts = []
    bar = tqdm(total=N, desc="clip statistics", unit="file", disable=None if progress else True)
    with bar:
        for s in range(0, N, chunk):
            e = min(N, s + chunk)
            parts.append(compute_clip_stats(cache.waves[s:e], cache.lengths[s:e], cache.cfg.sample_rate, cfg))
            bar.update(e - s)
    stats = pd.concat(parts, ignore_index=True)
    stats.loc[~cache.ok, stats.columns.drop("hash")] = np.nan
    stats.loc[~cache.ok, "hash"] = ""
    try:
        with atomic_write(path, "w") as f:
            stats.to_csv(f, index=False)
    except OSError as e:
        print(f"warning: could not save clip statistics to {path}: {e}", file=sys.stderr)
    return stats


def _relpath(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def name_problems(catalog: Catalog) -> pd.DataFrame:
    """Files whose name disagrees with their folder, and files skipped because the name holds no digit 0-9."""
    rows = []
    for path, rel, layout, digit, speaker in catalog.table[["path", "relpath", "dataset", "digit", "speaker"]].itertuples(
        index=False
    ):
        folders = PurePosixPath(rel).parts[:-1]
        if layout == "audiomnist" and folders and folders[-1].isdigit() and f"{int(folders[-1]):02d}" != speaker:
            rows.append((path, rel, f"speaker {speaker} in the name, but folder {folders[-1]}"))
        elif layout == "folder":
            said = [(f, digit_from_word(f)) for f in folders]
            wrong = [f for f, d in said if d is not None and d != digit]
            if wrong:
                rows.append((path, rel, f"digit {digit} from the name, but folder '{wrong[-1]}'"))
    for path, reason in catalog.skipped[["path", "reason"]].itertuples(index=False):
        if reason.startswith(_NO_LABEL) or "not valid UTF-8" in reason:
            rows.append((path, _relpath(path, catalog.root), reason))
    return pd.DataFrame(rows, columns=["path", "relpath", "detail"])


def quality_flags(catalog: Catalog, cache: WaveformCache, stats: pd.DataFrame, cfg: AnalyzeConfig) -> pd.DataFrame:
    """One row per (flag, file): flag (a FLAGS key), path, relpath, value (the measured number) and detail."""
    t = catalog.table
    rows: list[tuple[str, str, str, float, str]] = []
    for path, reason in catalog.skipped[["path", "reason"]].itertuples(index=False):
        if not (reason.startswith(_NO_LABEL) or "not valid UTF-8" in reason):
            rows.append(("unreadable", path, _relpath(path, catalog.root), math.nan, reason))
    for r, msg in sorted(cache.errors.items()):
        path = t["path"].iat[r]
        reason = msg[len(path) + 2 :] if msg.startswith(path + ": ") else msg
        rows.append(("unreadable", path, t["relpath"].iat[r], math.nan, reason))
    for path, rel, detail in name_problems(catalog).itertuples(index=False):
        rows.append(("name", path, rel, math.nan, detail))

    ok = np.asarray(cache.ok, bool)
    hashes = stats["hash"].where(ok, "")
    dup = hashes[(hashes != "") & hashes.duplicated(keep=False)]
    for group, (_, members) in enumerate(dup.groupby(dup, sort=False), 1):
        rels = t["relpath"].iloc[members.index].tolist()
        for r, rel in zip(members.index, rels):
            others = [o for o in rels if o != rel]
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            rows.append(("duplicate", t["path"].iat[r], rel, float(group), f"same samples as {', '.join(others[:3])}{more}"))

    def add(name: str, mask: pd.Series, values: pd.Series, fmt) -> None:
        for r in np.flatnonzero(mask.to_numpy() & ok):
            rows.append((name, t["path"].iat[r], t["relpath"].iat[r], float(values.iat[r]), fmt(values.iat[r])))

    silent = stats["rms_dbfs"] < cfg.silent_dbfs
    add("clipping", (stats["clip_share"] >= cfg.clip_share) & (stats["clip_share"] > 0), stats["clip_share"],
        lambda v: f"{v:.2%} of samples at or above {cfg.clip_level:g} of full scale")  # fmt: skip
    add("near_silent", silent, stats["rms_dbfs"], lambda v: f"RMS {v:.1f} dBFS (threshold {cfg.silent_dbfs:g})")
    add("dc_offset", stats["dc"].abs() > cfg.dc_offset, stats["dc"], lambda v: f"mean sample {v:+.4f}")
    add("leading_silence", (stats["lead_ms"] > cfg.silence_ms) & ~silent, stats["lead_ms"],
        lambda v: f"{v:.0f} ms of silence before the sound")  # fmt: skip
    add("trailing_silence", (stats["trail_ms"] > cfg.silence_ms) & ~silent, stats["trail_ms"],
        lambda v: f"{v:.0f} ms of silence after the sound")  # fmt: skip
    flags = pd.DataFrame(rows, columns=["flag", "path", "relpath", "value", "detail"])
    order = {name: i for i, name in enumerate(FLAGS)}
    return flags.sort_values(["flag", "relpath"], key=lambda c: c.map(order) if c.name == "flag" else c).reset_index(
        drop=True
    )


def training_view() -> tuple[AudioConfig, FeatureConfig, SpecAugmentConfig]:
    """Audio, feature and SpecAugment config of a default training run (TrainConfig when train.py is present)."""
    try:
        from .train import TrainConfig
    except ImportError:
        return AudioConfig(), FeatureConfig(), SpecAugmentConfig()
    t = TrainConfig()
    return t.audio, t.features, t.specaug


def pick_examples(table: pd.DataFrame, ok: np.ndarray) -> dict[int, int]:
    """Per digit, the decodable row whose duration is closest to the digit's median (a typical clip)."""
    out = {}
    usable = table[np.asarray(ok, bool)]
    for digit, g in usable.groupby("digit"):
        out[int(digit)] = int((g["duration"] - g["duration"].median()).abs().idxmin())
    return out


def example_views(paths: list[str], seed: int = 0) -> dict:
    """What training makes of `paths`: the fitted waveform, its features and the SpecAugment-masked features,
    built with the training code itself (load_clip, build_frontend, spec_augment) and the default TrainConfig."""
    audio_cfg, feat_cfg, spec_cfg = training_view()
    waves = torch.stack([load_clip(p, audio_cfg) for p in paths])
    frontend = build_frontend(feat_cfg, audio_cfg.sample_rate).eval()
    with torch.no_grad():
        feats = frontend(waves)
        gen = torch.Generator().manual_seed(seed)
        masked = spec_augment(feats, spec_cfg, gen) if feats.dim() == 4 else None
    return {
        "audio": audio_cfg,
        "features": feat_cfg,
        "specaug": spec_cfg,
        "waves": waves.numpy(),
        "feats": feats[:, 0].numpy(),
        "masked": masked[:, 0].numpy() if masked is not None else None,
    }


def analyze(
    paths: list[str | os.PathLike],
    layout: str | None = None,
    cfg: AnalyzeConfig = AnalyzeConfig(),
    progress: bool = True,
    examples: bool = True,
) -> Analysis:
    """Scan `paths`, build (or load) the analysis cache and compute every table of the report."""
    catalogs = [scan(p, layout=layout, progress=progress) for p in paths]
    catalog = combine(catalogs)
    t = catalog.table
    if t.empty:
        reasons = "; ".join(f"{r}" for r in catalog.skipped["reason"].head(3))
        raise AudiomnistError(
            f"no usable audio files under {', '.join(map(str, paths))}" + (f" ({reasons})" if reasons else "")
        )
    audio = analysis_audio_config(t, cfg.max_seconds)
    cache = WaveformCache.for_catalog(catalog, audio, progress=progress)
    stats = clip_stats(cache, cfg, progress=progress)
    flags = quality_flags(catalog, cache, stats, cfg)
    result = Analysis(
        catalog=catalog,
        cfg=cfg,
        audio=audio,
        cache_dir=cache.dir,
        counts=count_summary(t, cfg.balance_tolerance),
        census=census(t),
        lengths=length_summary(t, cfg.window_ms),
        speakers=speaker_summary(t, catalog.notes),
        stats=stats,
        flags=flags,
    )
    if examples:
        rows = pick_examples(t, cache.ok)
        if rows:
            views = example_views([t["path"].iat[r] for r in rows.values()], cfg.seed)
            for i, (digit, r) in enumerate(rows.items()):
                result.examples[digit] = {
                    "row": r,
                    "relpath": t["relpath"].iat[r],
                    "speaker": t["speaker"].iat[r],
                    "duration": float(t["duration"].iat[r]),
                    "wave": views["waves"][i],
                    "feat": views["feats"][i],
                    "masked": None if views["masked"] is None else views["masked"][i],
                }
            result.examples_meta = {k: views[k] for k in ("audio", "features", "specaug")}
    return result


def write_report(analysis: Analysis, out: str | os.PathLike) -> Path:
    """Write the PNG figures, per_file.csv, flags.csv, summary.json and report.html into `out`; return report.html."""
    from . import analyze_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = analysis.catalog.table
    per_file = pd.concat([t[["relpath", "digit", "speaker", "sample_rate", "channels", "duration"]], analysis.stats], axis=1)
    with atomic_write(out / "per_file.csv", "w") as f:
        per_file.to_csv(f, index=False)
    with atomic_write(out / "flags.csv", "w") as f:
        analysis.flags.to_csv(f, index=False)
    summary = analysis.summary()
    figures = analyze_html.save_figures(analysis, out)
    summary["figures"] = {name: path.name for name, path in figures.items()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    html = analyze_html.render(summary, figures)
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def headline(summary: dict) -> str:
    """A few lines for the terminal: size, balance, formats, lengths and flag counts."""
    b, L, c = summary["balance"], summary["lengths"], summary["census"]
    d = b["digits"]
    bal = "balanced" if b["balanced"] else f"NOT balanced (max/min {d['ratio'] or 'inf'})"
    rates = ", ".join(f"{k} Hz: {v}" for k, v in c["sample_rates"].items())
    q = summary["quality"]["counts"]
    flags = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in q.items() if v) or "none"
    return "\n".join([
        f"{summary['root']}: {summary['layout']} layout, {summary['files']} clips, {summary['speakers']} speakers, "
        f"{summary['digits']} digits ({d['min']}-{d['max']} per digit, {bal})",
        f"  sample rates: {rates}; channels: {', '.join(f'{k}: {v}' for k, v in c['channels'].items())}",
        f"  lengths: {L['min']:.2f}-{L['max']:.2f} s (mean {L['mean']:.2f} s), "
        f"{L['longer_than_window_share']:.1%} longer than {L['window_ms']} ms",
        f"  flags: {flags}",
    ])  # fmt: skip


def _cmd_analyze(args: argparse.Namespace) -> int:
    cfg = AnalyzeConfig(
        window_ms=args.window_ms, silence_ms=args.silence_ms, max_seconds=args.max_seconds, seed=args.seed
    )
    out = Path(args.out) if args.out else Path("analysis") / (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(args.path[0]).resolve().name) or "data")
    analysis = analyze(args.path, layout=args.layout, cfg=cfg, progress=not args.no_progress)
    report = write_report(analysis, out)
    print(headline(analysis.summary()))
    print(f"report: {report.resolve()}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="report on a dataset: counts, formats, lengths, speakers, examples and data-quality flags",
        description="Analyse a dataset folder and write report.html (self-contained), PNG figures, summary.json, "
        "per_file.csv and flags.csv. Audio goes through a separate analysis cache at the files' own rate.",
    )
    p.add_argument("path", nargs="+", help="dataset folder(s)")
    p.add_argument("--out", help="report folder (default: ./analysis/<folder name>)")
    p.add_argument("--layout", choices=["auto", *LAYOUTS], default="auto", help="file naming scheme (default: detect)")
    p.add_argument("--window-ms", type=int, default=1000, help="training window: report clips longer than this")
    p.add_argument("--silence-ms", type=int, default=300, help="flag leading/trailing silence longer than this")
    p.add_argument("--max-seconds", type=float, default=4.0, help="analyse at most this much of each clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the example SpecAugment masks")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_analyze)
