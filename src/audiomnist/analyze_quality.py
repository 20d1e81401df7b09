"""Data-quality checks of `audiomnist analyze`: per-clip level/silence statistics and the flags naming files.

Statistics come from the analysis waveform cache in vectorised chunks and are saved beside it, so a second
run over the same files only reads a CSV back.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .cache import INT16_SCALE, WaveformCache
from .catalog import Catalog
from .errors import AudiomnistError
from .paths import atomic_write, short_hash
from .sources import digit_from_word

STATS_VERSION = 1
STATS_CHUNK_SAMPLES = 1 << 22  # samples per vectorised chunk (16 MB as float32)
STAT_COLUMNS = ("rms", "rms_dbfs", "peak", "dc", "clip_share", "lead_ms", "trail_ms")
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
FLAG_COLUMNS = ["flag", "path", "relpath", "value", "detail"]
_NAME_REASONS = ("no digit label", "file name is not valid UTF-8")


@dataclass(frozen=True)
class QualityConfig:
    """Flag thresholds. Levels are fractions of full scale; dB values are dBFS unless said otherwise."""

    silence_ms: int = 300  # flag leading/trailing silence longer than this
    clip_level: float = 0.99  # a sample at or above this |level| counts as clipped
    clip_share: float = 0.001  # flag clips with at least this share of clipped samples
    silent_dbfs: float = -60.0  # flag clips whose RMS (DC removed) is below this
    dc_offset: float = 0.01  # flag clips whose mean sample is further than this from zero
    silence_db: float = -40.0  # a frame this far below the clip's loudest frame is silence
    frame_ms: int = 10

    def __post_init__(self) -> None:
        if self.silence_ms < 0 or self.frame_ms <= 0:
            raise AudiomnistError("analyze: silence_ms must be >= 0 and frame_ms positive")
        if not 0 < self.clip_level <= 1 or not 0 < self.clip_share <= 1:
            raise AudiomnistError("analyze: clip_level and clip_share must be in (0, 1]")


def _levels(x: np.ndarray, valid: np.ndarray, n: np.ndarray, clip_level: float) -> dict[str, np.ndarray]:
    """DC, RMS with the DC removed, peak and clipped share of left-aligned float clips; zeroes x past n in place."""
    count = np.maximum(n, 1).astype(np.float64)
    dc = x.sum(axis=1, dtype=np.float64) / count
    absx = np.abs(x)
    clipped = (valid & (absx >= clip_level)).sum(axis=1) / count
    peak = np.where(valid, absx, 0).max(axis=1).astype(np.float64)
    x -= dc[:, None].astype(np.float32)
    x[~valid] = 0
    rms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64) / count)
    return {"rms": rms, "rms_dbfs": 20 * np.log10(np.maximum(rms, 1e-6)), "peak": peak, "dc": dc, "clip_share": clipped}


def _silence(x: np.ndarray, n: np.ndarray, frame: int, cfg: QualityConfig) -> tuple[np.ndarray, np.ndarray]:
    """Samples before the first and after the last frame louder than silence_db below the clip's loudest frame
    (and above the near-silent level); the whole clip when no frame is loud."""
    B, L = x.shape
    nf = -(-L // frame)
    frames = np.pad(x, ((0, 0), (0, nf * frame - L))).reshape(B, nf, frame)
    frame_rms = np.sqrt(np.einsum("ijk,ijk->ij", frames, frames) / frame)
    floor = 10 ** (min(cfg.silent_dbfs, -60.0) / 20)
    threshold = np.maximum(frame_rms.max(axis=1) * 10 ** (cfg.silence_db / 20), floor)
    loud = (frame_rms > threshold[:, None]) & ((np.arange(nf) * frame)[None, :] < n[:, None])
    anyloud = loud.any(axis=1)
    first = loud.argmax(axis=1)
    last = nf - 1 - loud[:, ::-1].argmax(axis=1)
    lead = np.where(anyloud, np.minimum(first * frame, n), n)
    trail = np.where(anyloud, np.maximum(n - (last + 1) * frame, 0), n)
    return lead, trail


def _hashes(raw: np.ndarray, n: np.ndarray) -> list[str]:
    return [hashlib.blake2b(np.ascontiguousarray(r[:k]).tobytes(), digest_size=10).hexdigest() if k else ""
            for r, k in zip(raw, n)]  # fmt: skip


def compute_clip_stats(waves: np.ndarray, lengths: np.ndarray, sample_rate: int, cfg: QualityConfig) -> pd.DataFrame:
    """Per row of left-aligned clips (B, L) with `lengths`: rms (DC removed) and dc, peak, clipped share,
    leading/trailing silence in ms and a hash of the samples. Vectorised over the whole block."""
    raw = np.asarray(waves)
    n = np.asarray(lengths, dtype=np.int64)
    x = raw.astype(np.float32) * np.float32(1 / INT16_SCALE) if raw.dtype == np.int16 else raw.astype(np.float32)
    valid = np.arange(raw.shape[1])[None, :] < n[:, None]
    stats = _levels(x, valid, n, cfg.clip_level)
    lead, trail = _silence(x, n, max(1, round(sample_rate * cfg.frame_ms / 1000)), cfg)
    ms = 1000.0 / sample_rate
    return pd.DataFrame({**stats, "lead_ms": lead * ms, "trail_ms": trail * ms, "hash": _hashes(raw, n)})


def _read_stats(path: Path, rows: int) -> pd.DataFrame | None:
    try:
        stats = pd.read_csv(path, dtype={"hash": str}, keep_default_na=False,
                            na_values={c: ["", "nan", "NaN"] for c in STAT_COLUMNS})  # fmt: skip
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return stats if len(stats) == rows and list(stats.columns) == [*STAT_COLUMNS, "hash"] else None


def clip_stats(cache: WaveformCache, cfg: QualityConfig, progress: bool = True) -> pd.DataFrame:
    """compute_clip_stats over every cache row, saved in the cache folder (keyed by the cache and the thresholds
    that shape the numbers) so the next run only reads them back. Rows that failed to decode are NaN."""
    key = short_hash(cache.key, STATS_VERSION, cfg.clip_level, cfg.silence_db, cfg.silent_dbfs, cfg.frame_ms)
    path = cache.dir / f"analysis-stats-{key}.csv"
    if path.is_file() and (stats := _read_stats(path, len(cache))) is not None:
        return stats
    N, L = cache.waves.shape
    chunk = max(1, STATS_CHUNK_SAMPLES // max(L, 1))
    parts = []
    with tqdm(total=N, desc="clip statistics", unit="file", disable=None if progress else True) as bar:
        for s in range(0, N, chunk):
            parts.append(compute_clip_stats(cache.waves[s : s + chunk], cache.lengths[s : s + chunk],
                                            cache.cfg.sample_rate, cfg))  # fmt: skip
            bar.update(len(parts[-1]))
    stats = pd.concat(parts, ignore_index=True)
    stats.loc[~cache.ok, list(STAT_COLUMNS)] = np.nan
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


def _name_problem(rel: str, layout: str, digit: int, speaker: str) -> str | None:
    folders = rel.split("/")[:-1]
    if layout == "audiomnist" and folders and folders[-1].isdigit() and f"{int(folders[-1]):02d}" != speaker:
        return f"speaker {speaker} in the name, but folder {folders[-1]}"
    if layout == "folder":
        wrong = [f for f in folders if digit_from_word(f) not in (None, digit)]
        if wrong:
            return f"digit {digit} from the name, but folder '{wrong[-1]}'"
    return None


def name_problems(catalog: Catalog) -> pd.DataFrame:
    """Files whose name disagrees with their folder, and files skipped because the name holds no digit label."""
    rows = []
    columns = ["path", "relpath", "dataset", "digit", "speaker"]
    for path, rel, layout, digit, speaker in catalog.table[columns].itertuples(index=False):
        if (problem := _name_problem(rel, layout, digit, speaker)) is not None:
            rows.append((path, rel, problem))
    for path, reason in catalog.skipped[["path", "reason"]].itertuples(index=False):
        if reason.startswith(_NAME_REASONS):
            rows.append((path, _relpath(path, catalog.root), reason))
    return pd.DataFrame(rows, columns=["path", "relpath", "detail"])


def _unreadable(catalog: Catalog, cache: WaveformCache) -> list[tuple]:
    rows = [("unreadable", path, _relpath(path, catalog.root), math.nan, reason)
            for path, reason in catalog.skipped[["path", "reason"]].itertuples(index=False)
            if not reason.startswith(_NAME_REASONS)]  # fmt: skip
    t = catalog.table
    for r, msg in sorted(cache.errors.items()):
        path = t["path"].iat[r]
        reason = msg.removeprefix(path + ": ")
        rows.append(("unreadable", path, t["relpath"].iat[r], math.nan, reason))
    return rows


def _duplicates(table: pd.DataFrame, hashes: pd.Series) -> list[tuple]:
    """One row per file whose decoded samples equal another file's; value is the group number."""
    rows = []
    dup = hashes[(hashes != "") & hashes.duplicated(keep=False)]
    for group, (_, members) in enumerate(dup.groupby(dup, sort=False), 1):
        rels = table["relpath"].iloc[members.index].tolist()
        for r, rel in zip(members.index, rels):
            others = [o for o in rels if o != rel]
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            rows.append(("duplicate", table["path"].iat[r], rel, float(group),
                         f"same samples as {', '.join(others[:3])}{more}"))  # fmt: skip
    return rows


def _threshold_flags(table: pd.DataFrame, stats: pd.DataFrame, ok: np.ndarray, cfg: QualityConfig) -> list[tuple]:
    silent = stats["rms_dbfs"] < cfg.silent_dbfs
    checks = [
        ("clipping", (stats["clip_share"] >= cfg.clip_share) & (stats["clip_share"] > 0), "clip_share",
         lambda v: f"{v:.2%} of samples at or above {cfg.clip_level:g} of full scale"),
        ("near_silent", silent, "rms_dbfs", lambda v: f"RMS {v:.1f} dBFS (threshold {cfg.silent_dbfs:g})"),
        ("dc_offset", stats["dc"].abs() > cfg.dc_offset, "dc", lambda v: f"mean sample {v:+.4f}"),
        ("leading_silence", (stats["lead_ms"] > cfg.silence_ms) & ~silent, "lead_ms",
         lambda v: f"{v:.0f} ms of silence before the sound"),
        ("trailing_silence", (stats["trail_ms"] > cfg.silence_ms) & ~silent, "trail_ms",
         lambda v: f"{v:.0f} ms of silence after the sound"),
    ]  # fmt: skip
    paths, rels = table["path"].to_numpy(), table["relpath"].to_numpy()
    rows = []
    for name, mask, col, describe in checks:
        r = np.flatnonzero(mask.to_numpy() & ok)
        values = stats[col].to_numpy(np.float64)[r].tolist()
        rows += [(name, p, rel, v, describe(v)) for p, rel, v in zip(paths[r], rels[r], values)]
    return rows


def quality_flags(catalog: Catalog, cache: WaveformCache, stats: pd.DataFrame, cfg: QualityConfig) -> pd.DataFrame:
    """One row per (flag, file): flag (a FLAGS key), path, relpath, value (the measured number) and detail."""
    t, ok = catalog.table, np.asarray(cache.ok, bool)
    rows = _unreadable(catalog, cache)
    names = name_problems(catalog)
    rows += [("name", path, rel, math.nan, detail) for path, rel, detail in names.itertuples(index=False)]
    rows += _duplicates(t, stats["hash"].where(ok, ""))
    rows += _threshold_flags(t, stats, ok, cfg)
    flags = pd.DataFrame(rows, columns=FLAG_COLUMNS)
    order = {name: i for i, name in enumerate(FLAGS)}
    flags = flags.assign(_order=flags["flag"].map(order)).sort_values(["_order", "relpath"], kind="stable")
    return flags.drop(columns="_order").reset_index(drop=True)
