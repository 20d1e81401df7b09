"""Download a public dataset archive (resumable, verified), unpack it safely and catalog it.

`audiomnist data download audiomnist` fetches the AudioMNIST GitHub archive to <dest>.zip.part, resuming
with HTTP Range requests after an interruption, checks size and sha256, unpacks the data folder into a
temp folder beside the destination and renames it into place, so a failure never leaves half a dataset.
"""

from __future__ import annotations

import argparse
import ast
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from .catalog import Catalog, load_or_scan
from .errors import AudiomnistError
from .paths import atomic_write_text, data_home

MARKER = ".audiomnist-download.json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """A downloadable dataset: archive URL, the folder inside it that holds the data, and pins when known."""

    name: str
    url: str
    data_dir: str  # folder below the archive's top folder whose contents become the dataset root
    layout: str
    unpacked: str  # where the data folder sits in a manually unpacked copy, for hints
    sha256: str | None = None  # branch archives change with every commit, so none is pinned by default
    size: int | None = None


SOURCES = {
    "audiomnist": Source(
        "audiomnist",
        "https://github.com/soerenab/AudioMNIST/archive/refs/heads/master.zip",
        "data",
        "audiomnist",
        "AudioMNIST/data",
    ),
    "fsdd": Source(
        "fsdd",
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip",
        "recordings",
        "fsdd",
        "free-spoken-digit-dataset/recordings",
    ),
}


class _Transient(Exception):
    """A transfer problem worth retrying (dropped connection, short read, 5xx)."""


def _offline_error(source: Source, url: str, reason: object) -> AudiomnistError:
    return AudiomnistError(
        f"cannot reach {url} ({reason}). Offline? Use a local copy instead: "
        f"`audiomnist data download {source.name} --url /path/to/master.zip`, "
        f"or scan an unpacked copy with `audiomnist data scan /path/to/{source.unpacked}`"
    )


def _is_offline(reason: object) -> bool:
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError, socket.timeout)) or (
        isinstance(reason, OSError)
        and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.ECONNREFUSED)
    )


def _content_range_total(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    return start, int(m.group(2)) if m.group(2) != "*" else None


def _origin_file(archive: Path) -> Path:
    """Beside a (partial) archive: the URL it came from and the server's validator (ETag or Last-Modified)."""
    return archive.with_name(archive.name.removesuffix(".part") + ".source.json")


def _read_origin(archive: Path) -> dict:
    try:
        return json.loads(_origin_file(archive).read_text())
    except (OSError, ValueError):
        return {}


def _discard(archive: Path) -> None:
    """Delete a downloaded archive and the record of where it came from."""
    archive.unlink(missing_ok=True)
    _origin_file(archive).unlink(missing_ok=True)


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP attempt: resume `part` from its current size; raise _Transient when the transfer is cut short.

    A partial file from another URL is dropped, and a resume sends If-Range with the validator the server gave
    first, so a changed archive (a branch zip after a new commit) comes back whole instead of being spliced.
    """
    origin = _read_origin(part)
    if part.exists() and origin.get("url", url) != url:
        part.unlink()
        origin = {}
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "audiomnist", "Accept-Encoding": "identity"})
    if have:
        req.add_header("Range", f"bytes={have}-")
        if origin.get("validator"):
            req.add_header("If-Range", origin["validator"])
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            _, total = _content_range_total(e.headers.get("Content-Range"))
            if total is None or total == have:
                return  # already complete
            part.unlink()  # the partial file is longer than the archive: start over
            raise _Transient(f"partial file larger than the archive ({have} > {total} bytes)") from None
        if e.code >= 500 or e.code == 429:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise AudiomnistError(f"{url}: HTTP {e.code} {e.reason}") from None
    with resp:
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if resp.status != 206 or not origin:
            atomic_write_text(_origin_file(part), json.dumps({"url": url, "validator": validator}) + "\n")
        if resp.status == 206:
            start, total = _content_range_total(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Transient(f"server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # 200: the server ignored Range (or there was nothing to resume)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with open(part, mode) as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name,
            disable=not progress or not sys.stderr.isatty(),
        ) as bar:  # fmt: skip
            try:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection dropped: {e!r}") from None
            finally:
                f.flush()
                os.fsync(f.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Transient(f"got {size} of {total} bytes")


def fetch(
    url: str,
    target: Path,
    source: Source,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `target` via `target`.part, resuming and retrying transient failures with backoff."""
    if target.is_file() and _read_origin(target).get("url", url) == url:
        print(f"using the archive downloaded earlier: {target}")
        return target
    target.unlink(missing_ok=True)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except urllib.error.URLError as e:
            if _is_offline(e.reason):
                raise _offline_error(source, url, e.reason) from None
            if isinstance(e.reason, ssl.SSLError) or not isinstance(e.reason, OSError):
                raise AudiomnistError(f"{url}: {e.reason}") from None
            problem = str(e.reason)
        except (OSError, http.client.HTTPException) as e:  # no answer after connecting, reset, bad status line
            problem = f"{type(e).__name__}: {e}"
        except _Transient as e:
            problem = str(e)
        if attempt == retries:
            have = part.stat().st_size if part.exists() else 0
            raise AudiomnistError(
                f"download of {url} failed after {retries + 1} attempts ({problem}); "
                f"{have} bytes kept in {part}: run the same command again to resume"
            )
        wait = backoff * 2**attempt
        print(f"download interrupted ({problem}); retrying in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    os.replace(part, target)
    return target


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _local_path(url: str) -> Path | None:
    """A local archive named by a path or file:// URL, else None (an http(s) URL)."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise AudiomnistError(f"{url}: unsupported URL scheme {parsed.scheme!r}; use https://, file:// or a path")
    return Path(url).expanduser()


def _members_to_extract(zf: zipfile.ZipFile, data_dir: str) -> tuple[str, list[zipfile.ZipInfo]]:
    """Validate every member name (no absolute paths, no '..') and pick those under '<top>/<data_dir>/'.

    Falls back to the common folder of all audio files when the archive has no such folder (a zip of the data itself).
    """
    infos = zf.infolist()
    for info in infos:
        name = info.filename.replace("\\", "/")
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
            raise AudiomnistError(f"refusing to unpack {zf.filename}: {info.filename!r} escapes the target folder")
    pattern = re.compile(rf"^(?:[^/]+/)?{re.escape(data_dir)}/")
    prefixes = {m.group(0) for i in infos if (m := pattern.match(i.filename))}
    if len(prefixes) == 1:
        prefix = prefixes.pop()
    else:
        audio = [i.filename for i in infos if PurePosixPath(i.filename).suffix.lower() in (".wav", ".flac", ".ogg")]
        if not audio:
            raise AudiomnistError(f"{zf.filename}: no audio files in the archive")
        common = os.path.commonpath([os.path.dirname(a) for a in audio])
        prefix = f"{common}/" if common else ""
    chosen = [i for i in infos if i.filename.startswith(prefix) and i.filename != prefix and not i.is_dir()]
    return prefix, chosen


def _fsdd_speakers(zf: zipfile.ZipFile) -> dict | None:
    """FSDD keeps speaker metadata in metadata.py as a dict literal; read it without executing anything."""
    names = [n for n in zf.namelist() if PurePosixPath(n).name in ("speakers.json", "metadata.py")]
    for name in sorted(names, key=lambda n: (n.count("/"), not n.endswith(".json"))):
        text = zf.read(name).decode("utf-8", "replace")
        try:
            if name.endswith(".json"):
                return json.loads(text)
            for node in ast.parse(text).body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                    value = ast.literal_eval(node.value)
                    if all(isinstance(v, dict) for v in value.values()):
                        return value
        except (ValueError, SyntaxError):
            continue
    return None


def extract(archive: Path, dest: Path, source: Source, origin: dict, progress: bool = True) -> Path:
    """Unpack the dataset folder of `archive` into a temp folder beside `dest`, then rename it to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise AudiomnistError(f"{archive}: not a zip archive ({e})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent))
    try:
        with zf:
            prefix, members = _members_to_extract(zf, source.data_dir)
            quiet = not progress or not sys.stderr.isatty()
            for info in tqdm(members, desc=f"unpack {dest.name}", unit="file", disable=quiet):
                out = tmp / info.filename[len(prefix) :]
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                    raise AudiomnistError(f"{archive}: damaged archive, member {info.filename!r}: {e}") from None
            if source.name == "fsdd" and not (tmp / "speakers.json").exists():
                speakers = _fsdd_speakers(zf)
                if speakers:
                    atomic_write_text(tmp / "speakers.json", json.dumps(speakers, indent=2) + "\n")
        atomic_write_text(tmp / MARKER, json.dumps(origin, indent=2) + "\n")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def download(
    name: str,
    url: str | None = None,
    dest: str | os.PathLike | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 10.0,
) -> Catalog:
    """Fetch, verify, unpack and catalog dataset `name` (see SOURCES); returns the saved Catalog."""
    if name not in SOURCES:
        raise AudiomnistError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    source = SOURCES[name]
    url = url or source.url
    dest = Path(dest).expanduser().absolute() if dest else data_home() / "datasets" / name
    expected = (sha256 or source.sha256 or "").lower() or None
    if expected and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise AudiomnistError(f"--sha256 {sha256!r}: expected 64 hex digits")

    if dest.exists() and not dest.is_dir():
        raise AudiomnistError(f"--dest {dest} is a file; give a folder")
    present = dest.is_dir() and any(dest.iterdir())
    if present and not (dest / MARKER).exists():
        raise AudiomnistError(f"{dest} exists and was not made by this command; remove it or pick another --dest")
    if present and not force:
        print(f"{name} already downloaded to {dest} (use --force to download it again); rescanning")
    else:
        local = _local_path(url)
        if local is not None:
            if local.is_dir():
                raise AudiomnistError(f"{local} is a folder; scan it directly: audiomnist data scan {local}")
            if not local.is_file():
                raise AudiomnistError(f"{local}: no such file")
            archive = local
        else:
            archive = fetch(url, dest.parent / f"{name}.zip", source, retries, backoff, timeout, progress)
        if source.size is not None and url == source.url and archive.stat().st_size != source.size:
            raise AudiomnistError(f"{archive}: size {archive.stat().st_size} bytes, expected {source.size}")
        digest = sha256_file(archive)
        if expected and digest != expected:
            if local is None:
                _discard(archive)
            raise AudiomnistError(
                f"{archive}: sha256 mismatch (expected {expected}, got {digest}); "
                + ("the download was deleted, run the command again" if local is None else "wrong or damaged file")
            )
        if not expected:
            print(f"sha256 {digest}  (pin it with --sha256 {digest})")
        origin = {"name": name, "url": url, "sha256": digest, "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            extract(archive, dest, source, origin, progress)
        except AudiomnistError:
            if local is None:
                _discard(archive)  # a damaged or unsafe download is useless; the next run fetches it again
            raise
        if local is None:
            _discard(archive)
    return load_or_scan(dest, layout=source.layout, progress=progress)


def _cmd_download(args: argparse.Namespace) -> int:
    catalog = download(
        args.dataset, url=args.url, dest=args.dest, sha256=args.sha256, force=args.force, progress=not args.no_progress
    )
    return 0 if len(catalog) else 1


def add_cli(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.splitlines()[0]
    p.add_argument("dataset", choices=sorted(SOURCES), help="which dataset")
    p.add_argument("--url", help="mirror URL, file:// URL or path of a local archive (default: the GitHub archive)")
    p.add_argument("--dest", help="dataset folder (default: $AUDIOMNIST_HOME/datasets/<dataset>)")
    p.add_argument("--sha256", help="expected sha256 of the archive; the download is refused when it differs")
    p.add_argument("--force", action="store_true", help="download again even if the dataset is already there")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_download)
