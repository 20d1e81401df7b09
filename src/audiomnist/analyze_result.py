"""What `audiomnist analyze` measures against (AnalyzeConfig) and what it found (Analysis), shared by the analysis,
its figures and its HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .analyze_quality import FLAGS, QualityConfig
from .audio import AudioConfig
from .catalog import Catalog
from .config import to_dict
from .errors import AudiomnistError


@dataclass(frozen=True)
class AnalyzeConfig:
    """What the report measures against; `quality` holds the data-quality thresholds."""

    window_ms: int | None = None  # the report counts clips longer than this; None: the default training window
    balance_tolerance: float = 0.05  # balanced when max/min count <= 1 + tolerance
    max_seconds: float = 4.0  # longest stretch of a clip the analysis cache keeps
    max_rate: int = 16000  # analysis rate cap: speech lies below 8 kHz, and 48 kHz would triple the cache
    seed: int = 0  # SpecAugment masks of the examples
    quality: QualityConfig = QualityConfig()

    def __post_init__(self) -> None:
        if (self.window_ms or 1) <= 0 or self.max_seconds <= 0 or self.max_rate <= 0 or self.balance_tolerance < 0:
            raise AudiomnistError("analyze: window_ms, max_seconds and max_rate must be positive, tolerance >= 0")


@dataclass
class Analysis:
    """Everything the report shows; `stats` has one row per catalog row (NaN where the file failed to decode)."""

    catalog: Catalog
    cfg: AnalyzeConfig
    audio: AudioConfig
    cache_dir: Path
    decoded: int
    counts: dict
    census: dict
    lengths: dict
    speakers: dict
    stats: pd.DataFrame
    flags: pd.DataFrame
    examples: dict = field(default_factory=dict)  # digit -> relpath, speaker, duration, wave, feat, masked
    examples_meta: dict = field(default_factory=dict)  # audio/features/specaug configs the examples used

    def summary(self) -> dict:
        """JSON-ready numbers of the whole report (summary.json)."""
        t, c, per_digit = self.catalog.table, self.counts, self.lengths["per_digit"]
        flag_counts = self.flags["flag"].value_counts()
        return {
            "root": str(self.catalog.root),
            "layout": self.catalog.layout,
            "files": len(t),
            "decoded": self.decoded,
            "unreadable": int(flag_counts.get("unreadable", 0)),
            "speakers": int(t["speaker"].nunique()),
            "digits": len(c["per_digit"]),
            "balance": c["balance"],
            "per_digit": {str(k): int(v) for k, v in c["per_digit"].items()},
            "per_speaker": {str(k): int(v) for k, v in c["per_speaker"].items()},
            "digit_by_speaker": {str(s): {str(d): int(n) for d, n in col.items()} for s, col in c["matrix"].items()},
            "census": self.census,
            "lengths": {**self.lengths, "per_digit": {str(d): r for d, r in per_digit.to_dict("index").items()}},
            "speaker_metadata": self.speakers,
            "quality": {
                "thresholds": to_dict(self.cfg.quality),
                "counts": {name: int(flag_counts.get(name, 0)) for name in FLAGS},
                "files": {
                    name: self.flags.loc[self.flags["flag"] == name, ["relpath", "detail"]].to_dict("records")
                    for name in FLAGS
                },
            },  # fmt: skip
            "examples": {str(d): e["relpath"] for d, e in self.examples.items()},
            "analysis_audio": to_dict(self.audio),
            "analysis_cache": str(self.cache_dir),
            "notes": list(self.catalog.notes),
        }
