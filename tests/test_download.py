import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomnist import cli
from audiomnist.download import download
from audiomnist.errors import AudiomnistError

META = {"01": {"gender": "male", "age": "30", "recordingroom": "Kino"}, "02": {"gender": "female", "age": "1234"}}


def wav_bytes(n: int = 400, sr: int = 48000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, 0.2 * np.sin(np.arange(n) / 7.0), sr, format="WAV")
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def audiomnist_zip() -> bytes:
    top = "AudioMNIST-master"
    members = {f"{top}/README.md": b"# AudioMNIST\n", f"{top}/preprocess_data.py": b"print('hi')\n"}
    for s in ("01", "02"):
        for d in (0, 1, 2):
            members[f"{top}/data/{s}/{d}_{s}_0.wav"] = wav_bytes()
    members[f"{top}/data/audioMNIST_meta.txt"] = json.dumps(META).encode()
    return make_zip(members)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.ranges_seen.append(rng)
        data, start = srv.payload, 0
        if_range = self.headers.get("If-Range")
        if rng and srv.honour_range and (if_range is None or if_range == srv.etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if srv.etag:
            self.send_header("ETag", srv.etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:
            body, srv.drop_after = body[: srv.drop_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.payload = audiomnist_zip()
    srv.ranges_seen, srv.honour_range, srv.drop_after, srv.etag = [], True, None, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/master.zip"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOMNIST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fetch(url, dest, **kw):
    return download("audiomnist", url=url, dest=dest, progress=False, backoff=0, **kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".zip", ".part"))


def test_download_extract_scan(server, tmp_path, capsys):
    dest = tmp_path / "datasets" / "audiomnist"
    c = fetch(server.url, dest)
    assert sorted(p.name for p in dest.iterdir()) == [".audiomnist-download.json", "01", "02", "audioMNIST_meta.txt"]
    assert len(c) == 6 and c.layout == "audiomnist" and c.root == dest
    assert c.table.groupby("speaker")["gender"].first().to_dict() == {"01": "male", "02": "female"}
    assert c.table.groupby("speaker")["room"].first().to_dict() == {"01": "kino", "02": "unknown"}
    assert leftovers(dest.parent) == []
    digest = hashlib.sha256(server.payload).hexdigest()
    out = capsys.readouterr().out
    assert f"--sha256 {digest}" in out and "6 files, 2 speakers" in out
    assert server.ranges_seen == [None]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "ds"
    digest = hashlib.sha256(server.payload).hexdigest()
    server.drop_after = 2000
    with pytest.raises(AudiomnistError, match="run the same command again to resume"):
        fetch(server.url, dest, sha256=digest, retries=0)
    part = tmp_path / "audiomnist.zip.part"
    assert part.stat().st_size == 2000 and not dest.exists()
    c = fetch(server.url, dest, sha256=digest)
    assert server.ranges_seen == [None, "bytes=2000-"]
    assert len(c) == 6 and not part.exists()


def test_drop_is_retried_within_one_call(server, tmp_path):
    server.drop_after = 1500
    c = fetch(server.url, tmp_path / "ds", sha256=hashlib.sha256(server.payload).hexdigest(), retries=2)
    assert server.ranges_seen == [None, "bytes=1500-"] and len(c) == 6


def test_server_ignoring_range_restarts(server, tmp_path):
    server.honour_range = False
    (tmp_path / "audiomnist.zip.part").write_bytes(server.payload[:1000])
    c = fetch(server.url, tmp_path / "ds", sha256=hashlib.sha256(server.payload).hexdigest())
    assert server.ranges_seen == ["bytes=1000-"] and len(c) == 6


def test_complete_part_gets_416_and_is_used(server, tmp_path):
    (tmp_path / "audiomnist.zip.part").write_bytes(server.payload)
    c = fetch(server.url, tmp_path / "ds", sha256=hashlib.sha256(server.payload).hexdigest())
    assert server.ranges_seen == [f"bytes={len(server.payload)}-"] and len(c) == 6


def test_sha256_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "ds"
    with pytest.raises(AudiomnistError, match="sha256 mismatch"):
        fetch(server.url, dest, sha256="0" * 64)
    assert not dest.exists() and leftovers(tmp_path) == []


def test_offline_fails_fast_with_local_copy_hint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AudiomnistError, match=r"--url /path/to/master.zip.*data scan"):
        fetch(f"http://127.0.0.1:{port}/master.zip", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_local_file_url(server, tmp_path):
    archive = tmp_path / "master.zip"
    archive.write_bytes(server.payload)
    assert len(fetch(str(archive), tmp_path / "a")) == 6
    assert len(fetch(archive.as_uri(), tmp_path / "b")) == 6
    assert archive.is_file() and server.ranges_seen == []


def test_fsdd_archive_metadata_py(tmp_path):
    top = "free-spoken-digit-dataset-master"
    names = [f"{d}_{s}_{i}.wav" for d in (3, 4) for s in ("ann", "bo") for i in (0, 1)]
    members = {f"{top}/recordings/{n}": wav_bytes(sr=8000) for n in names}
    members[f"{top}/utils/metadata.py"] = (
        b"metadata = {\n 'ann': {'gender': 'female', 'accent': 'USA/neutral'},\n 'bo': {'gender': 'male'}\n}\n"
    )
    archive = tmp_path / "fsdd.zip"
    archive.write_bytes(make_zip(members))
    c = download("fsdd", url=str(archive), dest=tmp_path / "fsdd", progress=False)
    assert c.layout == "fsdd" and len(c) == 8
    assert c.table.groupby("speaker")["gender"].first().to_dict() == {"ann": "female", "bo": "male"}
    assert (tmp_path / "fsdd" / "speakers.json").is_file()


@pytest.mark.parametrize("evil", ["AudioMNIST-master/data/../../evil.wav", "/tmp/evil.wav"])
def test_zip_path_traversal_refused(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"AudioMNIST-master/data/01/0_01_0.wav": wav_bytes(), evil: b"x"}))
    with pytest.raises(AudiomnistError, match="escapes"):
        fetch(str(archive), tmp_path / "sub" / "ds")
    assert not (tmp_path / "sub" / "ds").exists() and not (tmp_path / "evil.wav").exists()
    assert leftovers(tmp_path / "sub") == []


def test_existing_destination(server, tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "keep.txt").parent.mkdir()
    (mine / "keep.txt").write_text("user data")
    with pytest.raises(AudiomnistError, match="not made by this command"):
        fetch(server.url, mine)
    assert (mine / "keep.txt").read_text() == "user data"
    dest = tmp_path / "ds"
    fetch(server.url, dest)
    assert len(fetch(server.url, dest)) == 6
    assert "already downloaded" in capsys.readouterr().out and server.ranges_seen == [None]
    fetch(server.url, dest, force=True)
    assert server.ranges_seen == [None, None]


def test_cli_download(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "data", ("audiomnist.catalog", "scan, download and describe datasets"))
    digest = hashlib.sha256(server.payload).hexdigest()
    argv = ["data", "download", "audiomnist", "--url", server.url, "--dest", str(tmp_path / "ds"), "--no-progress"]
    assert cli.main([*argv, "--sha256", digest]) == 0
    assert "6 files, 2 speakers" in capsys.readouterr().out
    assert cli.main([*argv, "--sha256", "abc", "--force"]) == 2
    assert "64 hex digits" in capsys.readouterr().err


def test_archive_left_by_an_interrupted_unpack_is_reused(server, tmp_path):
    (tmp_path / "audiomnist.zip").write_bytes(server.payload)
    assert len(fetch(server.url, tmp_path / "ds")) == 6
    assert server.ranges_seen == [] and not (tmp_path / "audiomnist.zip").exists()


def test_changed_archive_is_fetched_whole_not_spliced(server, tmp_path):
    """A resume names the version it started with (If-Range); a server with a newer archive sends all of it."""
    server.etag, server.drop_after = '"v1"', 2000
    with pytest.raises(AudiomnistError, match="resume"):
        fetch(server.url, tmp_path / "ds", retries=0)
    members = {f"AudioMNIST-master/data/03/{d}_03_0.wav": wav_bytes() for d in range(4)}
    server.payload, server.etag = make_zip(members), '"v2"'
    c = fetch(server.url, tmp_path / "ds", sha256=hashlib.sha256(server.payload).hexdigest())
    assert server.ranges_seen == [None, "bytes=2000-"] and len(c) == 4 and set(c.table["speaker"]) == {"03"}


def test_partial_file_from_another_url_is_dropped(server, tmp_path):
    server.drop_after = 2000
    with pytest.raises(AudiomnistError, match="resume"):
        fetch(server.url + "?mirror=a", tmp_path / "ds", retries=0)
    c = fetch(server.url, tmp_path / "ds", sha256=hashlib.sha256(server.payload).hexdigest())
    assert server.ranges_seen == [None, None] and len(c) == 6


def test_damaged_archive_is_a_clear_error_and_is_fetched_again(server, tmp_path, capsys):
    good = server.payload
    i = good.index(b"RIFF", good.index(b"data/01/1_01_0.wav"))
    server.payload = good[: i + 100] + bytes([good[i + 100] ^ 0xFF]) + good[i + 101 :]  # flips a byte: bad CRC
    with pytest.raises(AudiomnistError, match=r"damaged archive.*1_01_0\.wav"):
        fetch(server.url, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []
    assert not list(tmp_path.glob("*.source.json"))
    server.payload = good
    assert len(fetch(server.url, tmp_path / "ds")) == 6
    assert server.ranges_seen == [None, None]
