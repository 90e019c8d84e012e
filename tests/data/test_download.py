"""Tests for the MovieLens download against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from argusrec.data import download
from argusrec.data.download import MOVIELENS, default_cache_dir, fetch_movielens
from argusrec.errors import DownloadError

TIMEOUT = 2.0


def movielens_zip(name: str) -> bytes:
    """A tiny archive in the MovieLens layout: a ``<name>/`` folder with the usual files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if name == "ml-100k":
            z.writestr(f"{name}/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
            z.writestr(
                f"{name}/u.item", "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
            )
            z.writestr(f"{name}/README", "MovieLens 100K (test copy)\n")
        else:
            z.writestr(f"{name}/ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
            z.writestr(f"{name}/movies.csv", "movieId,title,genres\n31,Dangerous Minds (1995),Drama\n")
            z.writestr(f"{name}/README.txt", "MovieLens latest-small (test copy)\n")
    return buf.getvalue()


def md5_line(name: str, data: bytes) -> bytes:
    """The .md5 file as GroupLens writes it (BSD style)."""
    return f"MD5 ({name}.zip) = {hashlib.md5(data).hexdigest()}\n".encode()


@dataclass
class Server:
    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    short: set[str] = field(default_factory=set)  # paths served with a Content-Length too large
    stall: set[str] = field(default_factory=set)  # paths that never answer
    release: threading.Event = field(default_factory=threading.Event)

    def publish(self, name: str, data: bytes, md5: bytes | None = None) -> None:
        self.files[f"/{name}.zip"] = data
        self.files[f"/{name}.zip.md5"] = md5 if md5 is not None else md5_line(name, data)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Server(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.stall:
                state.release.wait(5)
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            extra = 1000 if self.path in state.short else 0
            self.send_header("Content-Length", str(len(body) + extra))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd.RequestHandlerClass = Handler
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.CACHE_ENV, raising=False)
    monkeypatch.delenv(download.BASE_URL_ENV, raising=False)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_verifies_and_caches(server: Server, tmp_path: Path) -> None:
    data = movielens_zip("ml-latest-small")
    server.publish("ml-latest-small", data)
    cache = tmp_path / "cache"
    path = fetch_movielens("ml-latest-small", cache_dir=cache, base_url=server.base_url, timeout=TIMEOUT)
    assert path == cache / "ml-latest-small.zip"
    assert path.read_bytes() == data
    with zipfile.ZipFile(path) as z:
        assert "ml-latest-small/ratings.csv" in z.namelist()
    assert server.requests == ["/ml-latest-small.zip.md5", "/ml-latest-small.zip"]
    marker = json.loads((cache / "ml-latest-small.zip.ok").read_text())
    assert marker["md5"] == hashlib.md5(data).hexdigest()
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()
    assert marker["size"] == len(data)
    assert leftovers(cache) == ["ml-latest-small.zip", "ml-latest-small.zip.ok"]  # no temporary files

    server.requests.clear()
    again = fetch_movielens("ml-latest-small", cache_dir=cache, base_url=server.base_url, timeout=TIMEOUT)
    assert again == path
    assert server.requests == []  # the verified copy is reused without touching the network


def test_md5_mismatch_leaves_nothing_behind(server: Server, tmp_path: Path) -> None:
    data = movielens_zip("ml-latest-small")
    wrong = hashlib.md5(b"something else").hexdigest()
    server.publish("ml-latest-small", data, md5=f"MD5 (ml-latest-small.zip) = {wrong}\n".encode())
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        fetch_movielens("ml-latest-small", cache_dir=cache, base_url=server.base_url, timeout=TIMEOUT)
    text = str(info.value)
    assert f"{server.base_url}/ml-latest-small.zip" in text
    assert wrong in text and hashlib.md5(data).hexdigest() in text
    assert leftovers(cache) == []


def test_pinned_sha256_is_enforced(server: Server, tmp_path: Path) -> None:
    # The registry pins the real ml-100k archive; a different zip with a matching md5 must fail.
    data = movielens_zip("ml-100k")
    server.publish("ml-100k", data)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        fetch_movielens("ml-100k", cache_dir=cache, base_url=server.base_url, timeout=TIMEOUT)
    assert MOVIELENS["ml-100k"].sha256 in str(info.value)
    assert hashlib.sha256(data).hexdigest() in str(info.value)
    assert leftovers(cache) == []


def test_pinned_sha256_alone_suffices_without_md5(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = movielens_zip("ml-100k")
    pinned = replace(MOVIELENS["ml-100k"], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(MOVIELENS, "ml-100k", pinned)
    server.files["/ml-100k.zip"] = data  # no .md5 published
    path = fetch_movielens("ml-100k", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert path.read_bytes() == data
    assert server.requests == ["/ml-100k.zip.md5", "/ml-100k.zip"]


def test_missing_md5_without_pin_is_an_error(server: Server, tmp_path: Path) -> None:
    server.files["/ml-latest.zip"] = movielens_zip("ml-latest")
    with pytest.raises(DownloadError, match=r"ml-latest\.zip\.md5: HTTP 404"):
        fetch_movielens("ml-latest", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert "/ml-latest.zip" not in server.requests
    assert leftovers(tmp_path) == []


def test_404_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    server.files["/ml-latest-small.zip.md5"] = md5_line("ml-latest-small", b"x")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        fetch_movielens("ml-latest-small", cache_dir=cache, base_url=server.base_url, timeout=TIMEOUT)
    text = str(info.value)
    assert f"{server.base_url}/ml-latest-small.zip: HTTP 404" in text
    assert str(cache / "ml-latest-small.zip") in text  # the hint says where to put it by hand
    assert leftovers(cache) == []


def test_incomplete_transfer_leaves_nothing_behind(server: Server, tmp_path: Path) -> None:
    server.publish("ml-latest-small", movielens_zip("ml-latest-small"))
    server.short.add("/ml-latest-small.zip")
    with pytest.raises(DownloadError, match=r"incomplete transfer, got \d+ of \d+ bytes"):
        fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert leftovers(tmp_path) == []


def test_timeout_is_bounded(server: Server, tmp_path: Path) -> None:
    server.publish("ml-latest-small", movielens_zip("ml-latest-small"))
    server.stall.add("/ml-latest-small.zip.md5")
    with pytest.raises(DownloadError, match=r"timed out"):
        fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=0.3)


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)
    assert f"http://127.0.0.1:{port}/ml-latest-small.zip.md5" in str(info.value)
    assert "place it at" in str(info.value)


def test_unknown_name_lists_known_names(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        fetch_movielens("ml-7m", cache_dir=tmp_path, base_url=server.base_url)
    assert "'ml-7m'" in str(info.value)
    for name in ("ml-100k", "ml-1m", "ml-20m", "ml-latest-small"):
        assert name in str(info.value)
    assert server.requests == []


def test_archive_placed_by_hand_is_verified_once(server: Server, tmp_path: Path) -> None:
    data = movielens_zip("ml-latest-small")
    server.publish("ml-latest-small", data)
    (tmp_path / "ml-latest-small.zip").write_bytes(data)
    path = fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert path.read_bytes() == data
    assert server.requests == ["/ml-latest-small.zip.md5"]  # checked, not downloaded again
    assert (tmp_path / "ml-latest-small.zip.ok").exists()


def test_wrong_archive_placed_by_hand_is_reported_and_kept(server: Server, tmp_path: Path) -> None:
    server.publish("ml-latest-small", movielens_zip("ml-latest-small"))
    placed = tmp_path / "ml-latest-small.zip"
    placed.write_bytes(b"not the archive")
    with pytest.raises(DownloadError, match=re.escape(str(placed))):
        fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert placed.read_bytes() == b"not the archive"  # the user's file is never deleted
    assert not (tmp_path / "ml-latest-small.zip.ok").exists()


def test_changed_archive_is_verified_again(server: Server, tmp_path: Path) -> None:
    data = movielens_zip("ml-latest-small")
    server.publish("ml-latest-small", data)
    path = fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    path.write_bytes(data[:-10])  # truncated after the fact: the size no longer matches the marker
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_movielens("ml-latest-small", cache_dir=tmp_path, base_url=server.base_url, timeout=TIMEOUT)


def test_environment_variables(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = movielens_zip("ml-latest-small")
    server.publish("ml-latest-small", data)
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "root"))
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url + "/")
    assert default_cache_dir() == tmp_path / "root" / "datasets"
    path = fetch_movielens("ml-latest-small", timeout=TIMEOUT, progress=False)
    assert path == tmp_path / "root" / "datasets" / "ml-latest-small.zip"
    assert path.read_bytes() == data


def test_default_cache_dir_without_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "argusrec" / "datasets"


def test_registry() -> None:
    expected = {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest"}
    assert set(MOVIELENS) == expected
    for name, archive in MOVIELENS.items():
        assert archive.name == name
        assert archive.url(download.DEFAULT_BASE_URL) == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        if archive.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", archive.sha256), name
    # The "latest" archives are re-released over time, so no digest can be pinned for them.
    assert MOVIELENS["ml-latest"].sha256 is None and MOVIELENS["ml-latest-small"].sha256 is None
