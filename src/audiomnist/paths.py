"""Where things live (AUDIOMNIST_HOME) and how files are written safely (temp + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def data_home() -> Path:
    """Root for datasets, catalogs and caches: $AUDIOMNIST_HOME, default ~/.cache/audiomnist."""
    return Path(os.environ.get("AUDIOMNIST_HOME", Path.home() / ".cache" / "audiomnist")).expanduser()


def runs_home() -> Path:
    """Default parent of training run folders: $AUDIOMNIST_RUNS, default ./runs."""
    return Path(os.environ.get("AUDIOMNIST_RUNS", "runs"))


def new_run_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """A fresh run folder path, `{root}/{YYYYmmdd-HHMMSS}-{name}` (root: runs_home()); not created here."""
    return Path(root or runs_home()) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def short_hash(*parts: object, n: int = 12) -> str:
    import hashlib  # here, not at the top: it loads OpenSSL's libcrypto, a few ms of every `predict` that needs none

    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:n]


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit fsync and rename it over `path`.

    A crash or kill at any point leaves either the old file or no file, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)
