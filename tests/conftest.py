"""Shared test fixtures: where ../shared lives, and a private AUDIOMNIST_HOME per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))
FSDD = SHARED / "data" / "fsdd" / "recordings"
AUDIOMNIST_META = SHARED / "data" / "audiomnist" / "audioMNIST_meta.txt"


@pytest.fixture(autouse=True, scope="session")
def _private_home(tmp_path_factory):
    """Keep catalogs and caches of the test run out of the user's ~/.cache/audiomnist."""
    home = tmp_path_factory.mktemp("audiomnist_home")
    old = os.environ.get("AUDIOMNIST_HOME")
    os.environ["AUDIOMNIST_HOME"] = str(home)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield home
    if old is None:
        os.environ.pop("AUDIOMNIST_HOME", None)
    else:
        os.environ["AUDIOMNIST_HOME"] = old


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD} (the ../shared folder is absent)")
    return FSDD


@pytest.fixture(scope="session")
def audiomnist_meta() -> Path:
    if not AUDIOMNIST_META.is_file():
        pytest.skip(f"real AudioMNIST metadata not found at {AUDIOMNIST_META} (the ../shared folder is absent)")
    return AUDIOMNIST_META
