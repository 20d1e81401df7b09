"""Scan a dataset folder into a catalog: one row per usable clip (label, speaker, header facts, metadata).

Only headers are read, so rescanning 30,000 files takes seconds. Files that cannot be used (unreadable,
empty, unlabelled, unsupported audio format, undecodable name) go to a skip report and never stop the scan.
Hidden files and folders (".name", "__MACOSX") are ignored; so are files that do not look like audio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf
from tqdm import tqdm

from .decode import FfmpegError, ffmpeg_decode, ffmpeg_installed, libsndfile_reason, unreadable_detail
from .errors import AudiomnistError
from .paths import atomic_write, atomic_write_text, data_home, short_hash
from .sources import (
    IGNORED_DIRS,
    LAYOUTS,
    NOT_AUDIO,
    OTHER_AUDIO_EXTS,
    UNKNOWN,
    audio_file_rule,
    detect_layout_from_names,
    is_audio,
    load_metadata,
    parse_label,
    truncation,
)  # fmt: skip

COLUMNS = (
    "path", "relpath", "dataset", "digit", "speaker", "repetition", "sample_rate", "channels", "frames",
    "duration", "format", "subtype", "gender", "age", "accent", "room", "native_speaker",
)  # fmt: skip
INT_COLUMNS = ("digit", "repetition", "sample_rate", "channels", "frames")
FLOAT_COLUMNS = ("duration", "age")
STR_COLUMNS = tuple(c for c in COLUMNS if c not in INT_COLUMNS + FLOAT_COLUMNS)
SKIPPED_COLUMNS = ("path", "reason")


@dataclass
class Catalog:
    """A scanned dataset. `fingerprint` changes whenever any cataloged file is added, removed or touched."""

    root: Path
    layout: str
    table: pd.DataFrame = field(repr=False)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SKIPPED_COLUMNS)), repr=False)
    fingerprint: str = ""
    created: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    def summary(self) -> dict:
        t = self.table
        dur = t["duration"]
        per_speaker = t.drop_duplicates("speaker")
        return {
            "root": str(self.root),
            "layout": self.layout,
            "files": len(t),
            "speakers": int(t["speaker"].nunique()),
            "digits": {int(k): int(v) for k, v in t["digit"].value_counts().sort_index().items()},
            "sample_rates": {int(k): int(v) for k, v in t["sample_rate"].value_counts().sort_index().items()},
            "channels": {int(k): int(v) for k, v in t["channels"].value_counts().sort_index().items()},
            "duration_s": {
                "total": float(dur.sum()),
                "min": float(dur.min()) if len(t) else 0.0,
                "mean": float(dur.mean()) if len(t) else 0.0,
                "max": float(dur.max()) if len(t) else 0.0,
            },
            "speakers_by_gender": {str(k): int(v) for k, v in per_speaker["gender"].value_counts().items()},
            "skipped": len(self.skipped),
        }

    def save(self, out_dir: str | os.PathLike, format: str = "csv") -> Path:
        """Write catalog.{csv,parquet}, skipped.{csv,parquet} and catalog.json (written last) into `out_dir`."""
        out = Path(out_dir)
        if format not in ("csv", "parquet"):
            raise AudiomnistError(f"unknown catalog format {format!r}; use csv or parquet")
        if format == "parquet" and not _have_parquet():
            raise AudiomnistError("--format parquet needs pyarrow (pip install pyarrow); or use --format csv")
        for name, df in (("catalog", self.table), ("skipped", self.skipped)):
            with atomic_write(out / f"{name}.{format}", "wb") as f:
                if format == "csv":
                    df.to_csv(f, index=False, encoding="utf-8")
                else:
                    df.to_parquet(f, index=False)
        info = {
            "root": str(self.root),
            "layout": self.layout,
            "fingerprint": self.fingerprint,
            "created": self.created,
            "format": format,
            "files": len(self.table),
            "skipped": len(self.skipped),
            "notes": list(self.notes),
        }
        atomic_write_text(out / "catalog.json", json.dumps(info, indent=2) + "\n")
        return out


def _have_parquet() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("pyarrow", "fastparquet"))


def load_catalog(out_dir: str | os.PathLike) -> Catalog:
    """Read a catalog written by Catalog.save."""
    out = Path(out_dir)
    try:
        info = json.loads((out / "catalog.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AudiomnistError(f"{out / 'catalog.json'}: not a saved catalog ({e})") from None
    fmt = info.get("format", "csv")
    if fmt == "parquet":
        table = pd.read_parquet(out / "catalog.parquet")
        skipped = pd.read_parquet(out / "skipped.parquet")
    else:
        table = pd.read_csv(
            out / "catalog.csv",
            dtype={c: str for c in STR_COLUMNS},
            keep_default_na=False,
            na_values={"age": ["", "nan", "NaN"]},
            encoding="utf-8",
        )
        skipped = pd.read_csv(out / "skipped.csv", dtype=str, keep_default_na=False, encoding="utf-8")
    return Catalog(
        root=Path(info["root"]),
        layout=info["layout"],
        table=_typed(table),
        skipped=skipped,
        fingerprint=info["fingerprint"],
        created=info.get("created", ""),
        notes=list(info.get("notes", [])),
    )


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.reindex(columns=list(COLUMNS))
    return table.astype({**{c: "int64" for c in INT_COLUMNS}, **{c: "float64" for c in FLOAT_COLUMNS}})


def _display(path: str) -> str:
    """A printable, UTF-8-encodable form of a path whose name may hold undecodable bytes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _walk(root: Path, skipped: list[tuple[str, str]]) -> Iterator[str]:
    """Relative paths of all non-hidden files under `root`.

    Symlinked folders are followed after the real tree, and every folder is entered once (by device and
    inode), so links never loop and a file reachable both directly and through a link keeps its real path.
    """
    seen: set[tuple[int, int]] = set()
    stack, linked = [""], []
    while stack or linked:
        rel_dir = stack.pop() if stack else linked.pop(0)
        folder = root / rel_dir if rel_dir else root
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            skipped.append((_display(str(folder)), f"folder not readable: {e.strerror or e}"))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name in IGNORED_DIRS:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                yield rel
            elif entry.is_symlink():
                linked.append(rel)
            else:
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def _fingerprint(layout: str, stats: list[tuple[str, int, int]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(layout.encode() + b"\n")
    for rel, size, mtime_ns in sorted(stats):
        h.update(f"{rel}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _unreadable_reason(e: Exception) -> str:
    return f"unreadable as audio: {libsndfile_reason(e)}"


def _header(path: str) -> tuple[int, int, int, str, str, str | None]:
    """(rate, channels, frames, format, subtype, truncation) of an audio file: libsndfile's header, or the audio
    ffmpeg decodes (format: the extension, subtype FFMPEG) for what libsndfile cannot read. FfmpegError says why
    neither could."""
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            return f.samplerate, f.channels, f.frames, f.format, f.subtype, truncation(f.extra_info)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError/TypeError for garbage
        reason = _unreadable_reason(e)
    suffix = os.path.splitext(path)[1].lower()
    try:
        x, sr = ffmpeg_decode(path)
    except FfmpegError as e:
        if suffix in OTHER_AUDIO_EXTS and not ffmpeg_installed():
            raise FfmpegError(f"unsupported audio format {suffix}; convert to WAV, FLAC or OGG, or install ffmpeg "
                              f"({reason})") from None  # fmt: skip
        raise FfmpegError(f"{reason}{unreadable_detail(path, e)}") from None
    return sr, x.shape[1], len(x), suffix.lstrip(".").upper() or "?", "FFMPEG", None


def audio_candidates(root: Path) -> tuple[list[str], list[tuple[str, str]], dict[str, int]]:
    """(relative paths audio_file_rule takes, (file, why) of the refused ones, count per extension of the ignored
    ones) under `root`: the folder walk and rule of `data scan`, for readers that list clips themselves."""
    skipped: list[tuple[str, str]] = []
    ignored: dict[str, int] = {}
    return _candidates(root, skipped, ignored), skipped, ignored


def _candidates(root: Path, skipped: list[tuple[str, str]], ignored: dict[str, int]) -> list[str]:
    """Relative paths under `root` that audio_file_rule takes; refused ones to `skipped`, a count per extension of
    the others to `ignored`. The same rule as predict's: a name decides only what is tried, the content the rest."""
    audio = []
    for rel in _walk(root, skipped):
        verdict = audio_file_rule(rel)
        if verdict == NOT_AUDIO:
            suffix = os.path.splitext(rel)[1].lower() or "no extension"
            ignored[suffix] = ignored.get(suffix, 0) + 1
        elif verdict is not None:
            skipped.append((_display(str(root / rel)), verdict))
        else:
            audio.append(rel)
    return audio


def scan(root: str | os.PathLike, layout: str | None = None, progress: bool = True) -> Catalog:
    """Catalog every usable audio file under `root` (wav/flac/ogg), reading headers only.

    `layout` is one of LAYOUTS, or None/"auto" to detect it. Rows are sorted by relpath.
    """
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise AudiomnistError(f"{root}: no such folder")
    if not root.is_dir():
        raise AudiomnistError(f"{root}: not a folder; scan expects the dataset's top folder")
    if layout not in (None, "auto", *LAYOUTS):
        raise AudiomnistError(f"unknown layout {layout!r}; use auto or one of {', '.join(LAYOUTS)}")
    skipped: list[tuple[str, str]] = []
    ignored: dict[str, int] = {}
    audio = _candidates(root, skipped, ignored)
    if layout in (None, "auto"):
        layout = detect_layout_from_names(audio)
    meta = load_metadata(root, layout)

    rows, stats, truncated = [], [], []
    disable = not progress or not sys.stderr.isatty()
    for rel in tqdm(audio, desc=f"scan {root.name}", unit="file", disable=disable):
        path = str(root / rel)
        label = parse_label(rel, layout)
        if label is None:
            skipped.append((path, f"no digit label in the name or folders ({layout} layout)"))
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            skipped.append((path, f"cannot stat: {e.strerror or e} (broken symlink?)"))
            continue
        if st.st_size == 0:
            skipped.append((path, "empty file (0 bytes)"))
            continue
        try:
            sr, ch, frames, fmt, subtype, cut = _header(path)
        except FfmpegError as e:
            skipped.append((path, str(e)))
            continue
        if cut:  # the part that is there is kept (it may hold the word), but the damage must not go unnoticed
            truncated.append(f"{_display(path)}: {cut}")
        if frames <= 0 or sr <= 0:
            skipped.append((path, "no audio frames (header only)"))
            continue
        m = meta.get(label.speaker)
        rows.append((
            path, rel, layout, label.digit, label.speaker, label.repetition, sr, ch, frames, frames / sr,
            fmt, subtype, m.gender, m.age, m.accent, m.room, m.native_speaker,
        ))  # fmt: skip
        stats.append((rel, st.st_size, st.st_mtime_ns))

    table = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
    table = table.sort_values("relpath", kind="stable").reset_index(drop=True)
    skipped_df = pd.DataFrame(sorted(skipped), columns=list(SKIPPED_COLUMNS))
    notes = list(meta.notes) + truncated
    if ignored:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(ignored.items()))
        notes.append(f"ignored {sum(ignored.values())} files that are not audio by name ({counts})")
    if meta.path is not None:
        missing = sorted(set(table["speaker"]) - set(meta.speakers))
        if missing:
            notes.append(f"speakers missing from {meta.path.name}: {', '.join(missing)} (metadata unknown)")
    return Catalog(
        root=root,
        layout=layout,
        table=table,
        skipped=skipped_df,
        fingerprint=_fingerprint(layout, stats),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        notes=notes,
    )


def index_dir(root: str | os.PathLike) -> Path:
    """Where the catalog of `root` is saved by default: data_home()/index/<folder name>-<hash of its real path>."""
    real = Path(root).expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", real.name) or "root"
    return data_home() / "index" / f"{name}-{short_hash(str(real))}"


def report(catalog: Catalog, saved_to: Path | None = None, max_reasons: int = 5) -> str:
    """Human-readable scan summary: counts, rates, durations, genders and the first skip reasons."""
    s = catalog.summary()
    d = s["duration_s"]
    lines = [
        f"{s['root']}: {s['layout']} layout, {s['files']} files, {s['speakers']} speakers, {len(s['digits'])} digits",
        "  digits: " + ", ".join(f"{k}:{v}" for k, v in s["digits"].items()),
        "  sample rates: " + ", ".join(f"{k} Hz:{v}" for k, v in s["sample_rates"].items()),
        f"  duration: total {d['total'] / 60:.1f} min, "
        f"min {d['min']:.3f} s, mean {d['mean']:.3f} s, max {d['max']:.3f} s",
    ]
    if not s["files"]:
        lines[1:] = ["  no usable audio files: expected .wav/.flac/.ogg named like 7_01_3.wav, 7_alice_0.wav "
                     "or seven.wav, or inside folders named 0-9/zero-nine"]  # fmt: skip
    genders = {k: v for k, v in s["speakers_by_gender"].items() if k != UNKNOWN}
    if genders:
        unknown = s["speakers_by_gender"].get(UNKNOWN, 0)
        lines.append(
            "  speakers by gender: " + ", ".join(f"{k}:{v}" for k, v in sorted(genders.items()))
            + (f", unknown:{unknown}" if unknown else "")
        )  # fmt: skip
    lines += [f"  note: {n}" for n in catalog.notes]
    if s["skipped"]:
        lines.append(f"  skipped {s['skipped']} files:")
        lines += [f"    {p}: {r}" for p, r in catalog.skipped.head(max_reasons).itertuples(index=False)]
        if s["skipped"] > max_reasons:
            lines.append(f"    ... and {s['skipped'] - max_reasons} more")
        if saved_to is not None:
            lines.append(f"  full skip report: {saved_to / 'skipped.csv'}")
    if saved_to is not None:
        lines.append(f"  catalog saved to {saved_to}")
    return "\n".join(lines)


def load_or_scan(root: str | os.PathLike, layout: str | None = None, progress: bool = True) -> Catalog:
    """Rescan `root` (headers only, cheap), save the catalog to index_dir(root) and print the summary."""
    catalog = scan(root, layout=layout, progress=progress)
    out: Path | None = index_dir(root)
    try:
        catalog.save(out)
    except OSError as e:
        print(f"warning: could not save the catalog to {out}: {e}", file=sys.stderr)
        out = None
    print(report(catalog, out))
    return catalog


def combine(catalogs: list[Catalog]) -> Catalog:
    """Concatenate catalogs of several roots; speakers are prefixed '<root name>/' when names would collide."""
    if not catalogs:
        raise AudiomnistError("combine needs at least one catalog")
    if len(catalogs) == 1:
        return catalogs[0]
    speaker_sets = [set(c.table["speaker"]) for c in catalogs]
    collide = any(a & b for i, a in enumerate(speaker_sets) for b in speaker_sets[i + 1 :])
    prefixes = [c.root.name or c.layout for c in catalogs]
    if len(set(prefixes)) < len(prefixes):
        prefixes = [f"{p}{i}" for i, p in enumerate(prefixes)]
    root = Path(os.path.commonpath([str(c.root) for c in catalogs]))
    tables = []
    for c, prefix in zip(catalogs, prefixes):
        t = c.table.copy()
        if collide:
            t["speaker"] = prefix + "/" + t["speaker"]
        t["relpath"] = [Path(p).relative_to(root).as_posix() for p in t["path"]]
        tables.append(t)
    layouts = {c.layout for c in catalogs}
    return Catalog(
        root=root,
        layout=layouts.pop() if len(layouts) == 1 else "mixed",
        table=_typed(pd.concat(tables, ignore_index=True)).sort_values("relpath", kind="stable").reset_index(drop=True),
        skipped=pd.concat([c.skipped for c in catalogs], ignore_index=True),
        fingerprint=short_hash(*[c.fingerprint for c in catalogs], n=32),
        created=max(c.created for c in catalogs),
        notes=[n for c in catalogs for n in c.notes],
    )


def sample_root() -> Path:
    """The small synthetic dataset shipped inside the package (AudioMNIST layout, 16 kHz FLAC)."""
    return Path(__file__).parent / "sample"


def _cmd_scan(args: argparse.Namespace) -> int:
    catalog = scan(args.path, layout=args.layout, progress=not args.no_progress)
    out = Path(args.out) if args.out else index_dir(args.path)
    catalog.save(out, format=args.format)
    print(report(catalog, out))
    return 0 if len(catalog) else 1


def _cmd_sample(args: argparse.Namespace) -> int:
    root = sample_root()
    if not root.is_dir():
        raise AudiomnistError(f"{root}: the sample dataset is missing from this installation; reinstall audiomnist")
    if args.path:
        print(root)
        return 0
    readme = root / "README.md"
    if readme.is_file():
        print(readme.read_text(encoding="utf-8").rstrip() + "\n")
    n = sum(is_audio(f) and not f.startswith(".") for _, _, files in os.walk(root) for f in files)
    print(f"{n} audio files at {root}")
    print(f"scan it with: audiomnist data scan {root}")
    return 0


def add_scan_cli(s: argparse.ArgumentParser) -> None:
    s.description = scan.__doc__.splitlines()[0]
    s.add_argument("path", help="dataset folder (e.g. AudioMNIST/data, free-spoken-digit-dataset/recordings)")
    s.add_argument("--layout", choices=["auto", *LAYOUTS], default="auto", help="file naming scheme (default: detect)")
    s.add_argument("--out", help="folder for catalog.csv, skipped.csv, catalog.json (default: index beside the cache)")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv", help="table format (parquet needs pyarrow)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_scan)


def add_sample_cli(m: argparse.ArgumentParser) -> None:
    m.description = sample_root.__doc__
    m.add_argument("--path", action="store_true", help="print only the sample folder's path")
    m.set_defaults(func=_cmd_sample)
