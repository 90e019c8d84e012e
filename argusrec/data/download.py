"""Download of MovieLens archives from GroupLens into a local cache, verified by checksum.

Used only when the user names a dataset that is not on disk. :func:`fetch_movielens` returns the
path of ``<cache>/<name>.zip``; the archive is downloaded once, verified, and reused afterwards
without touching the network.

* **Where.** ``cache_dir`` argument, else ``$ARGUSREC_CACHE/datasets``, else
  ``~/.cache/argusrec/datasets``. The archive comes from ``<base>/<name>.zip`` where ``<base>`` is
  the ``base_url`` argument, else ``$ARGUSREC_MOVIELENS_URL``, else the GroupLens server.
* **Verification.** GroupLens publishes ``<name>.zip.md5`` next to every archive (one line,
  ``MD5 (ml-100k.zip) = 0e33...``); it is fetched and must match. The releases that never change
  also have a sha256 pinned in :data:`MOVIELENS`, which must match as well (and suffices alone when
  the ``.md5`` cannot be fetched). The pinned values were checked against several independent
  public copies (TensorFlow Datasets' ``url_checksums/movielens.txt`` among them); the "latest"
  datasets are re-released over time, so they have none.
* **Atomicity.** The download goes to a hidden temporary file in the cache folder and is renamed
  into place only after the checksums matched; on any failure the temporary file is removed. A
  ``<name>.zip.ok`` marker (JSON: url, md5, sha256, size) records the verification, so later calls
  only compare the size. An archive placed in the cache by hand is verified once, then marked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from argusrec import __version__
from argusrec.errors import DownloadError

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
CACHE_ENV = "ARGUSREC_CACHE"
BASE_URL_ENV = "ARGUSREC_MOVIELENS_URL"
DEFAULT_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")


@dataclass(frozen=True)
class MovieLensArchive:
    """One GroupLens archive: ``<base>/<name>.zip``, and its pinned sha256 when the release is fixed."""

    name: str
    description: str
    sha256: str | None = None

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.name}.zip"


MOVIELENS: dict[str, MovieLensArchive] = {
    a.name: a
    for a in (
        MovieLensArchive(
            "ml-100k",
            "100,000 ratings, 943 users, 1,682 movies (1998)",
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        ),
        MovieLensArchive(
            "ml-1m",
            "1,000,209 ratings, 6,040 users, 3,706 movies (2003)",
            "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        ),
        MovieLensArchive(
            "ml-10m",
            "10 million ratings, 72,000 users, 10,000 movies (2009)",
            "813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
        ),
        MovieLensArchive(
            "ml-20m",
            "20 million ratings, 138,000 users, 27,000 movies (2015)",
            "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        ),
        MovieLensArchive(
            "ml-25m",
            "25 million ratings, 162,000 users, 62,000 movies (2019)",
            "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        ),
        MovieLensArchive(
            "ml-32m",
            "32 million ratings, 200,948 users, 87,585 movies (2024)",
            "e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
        ),
        MovieLensArchive("ml-latest-small", "about 100,000 ratings; changes over time (development set)"),
        MovieLensArchive("ml-latest", "all ratings to date; changes over time (development set)"),
    )
}


@dataclass(frozen=True)
class _Digests:
    md5: str
    sha256: str
    size: int


def default_cache_dir() -> Path:
    """``$ARGUSREC_CACHE/datasets`` when the variable is set, else ``~/.cache/argusrec/datasets``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "argusrec"
    return base / "datasets"


def fetch_movielens(
    name: str,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Path to the verified ``<name>.zip`` in the cache, downloading it first when it is not there.

    ``timeout`` bounds each network operation (connect, each read) in seconds. The progress bar
    shows only when ``progress`` is true and stderr is a terminal. Raises :class:`DownloadError`
    for an unknown name, a network failure or a checksum mismatch.
    """
    archive = MOVIELENS.get(name)
    if archive is None:
        raise DownloadError(f"unknown MovieLens dataset {name!r}; known: {', '.join(MOVIELENS)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = archive.url(base)
    dest = cache / f"{name}.zip"
    marker = cache / f"{name}.zip.ok"
    if _marker_matches(dest, marker, archive):
        return dest

    cache.mkdir(parents=True, exist_ok=True)
    try:
        expected_md5 = _published_md5(url + ".md5", timeout, required=archive.sha256 is None, dest=dest)
    except DownloadError as exc:
        if dest.exists():
            raise DownloadError(f"cannot verify {dest} without its published md5: {exc}") from exc
        raise
    if dest.exists():
        # Placed by hand (or renamed into place just before a crash): verify it once, never delete it.
        with dest.open("rb") as f:
            digests = _hash_stream(f, None, None)
        _verify(digests, archive, expected_md5, what=f"{dest} (expected the archive from {url})")
        _write_marker(marker, url, digests)
        return dest

    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=f".{name}.zip.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digests = _download(url, out, timeout, progress, dest)
        _verify(digests, archive, expected_md5, what=url)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(marker, url, digests)
    return dest


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _manual_hint(dest: Path) -> str:
    return f"without network access, download the archive elsewhere and place it at {dest}"


def _open(url: str, timeout: float, dest: Path) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": f"argusrec/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason} ({_manual_hint(dest)})") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {exc.reason} ({_manual_hint(dest)})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"could not download {url}: {_reason(exc)} ({_manual_hint(dest)})") from exc


def _published_md5(url: str, timeout: float, *, required: bool, dest: Path) -> str | None:
    """The md5 GroupLens publishes for the archive; None when unreachable and a sha256 is pinned."""
    try:
        with _open(url, timeout, dest) as response:
            text = response.read(4096).decode("ascii", errors="replace")
    except DownloadError:
        if required:
            raise
        return None
    except (OSError, http.client.HTTPException) as exc:
        if required:
            raise DownloadError(f"could not download {url}: {_reason(exc)} ({_manual_hint(dest)})") from exc
        return None
    match = _MD5_RE.search(text)
    if match is None:
        raise DownloadError(f"{url} does not contain an md5 checksum; it starts with {text[:80]!r}")
    return match.group(1).lower()


def _download(url: str, out: BinaryIO, timeout: float, progress: bool, dest: Path) -> _Digests:
    """Stream ``url`` into ``out`` and return the digests of what was written."""
    with _open(url, timeout, dest) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        show = progress and sys.stderr.isatty()
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not show) as bar:
            try:
                digests = _hash_stream(response, out, bar.update)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"could not download {url}: the transfer failed ({_reason(exc)}) ({_manual_hint(dest)})"
                ) from exc
    if total is not None and digests.size != total:
        raise DownloadError(
            f"could not download {url}: incomplete transfer, got {digests.size} of {total} bytes ({_manual_hint(dest)})"
        )
    return digests


def _hash_stream(src: BinaryIO, out: BinaryIO | None, on_chunk: Callable[[int], object] | None) -> _Digests:
    """Read ``src`` to the end (copying it to ``out`` when given) and return its digests and size."""
    md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    while chunk := src.read(_CHUNK):
        md5.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return _Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest(), size=size)


def _verify(digests: _Digests, archive: MovieLensArchive, md5: str | None, *, what: str) -> None:
    if md5 is not None and digests.md5 != md5:
        raise DownloadError(
            f"checksum mismatch for {what}: expected md5 {md5} (published by GroupLens), got {digests.md5}"
        )
    if archive.sha256 is not None and digests.sha256 != archive.sha256:
        raise DownloadError(
            f"checksum mismatch for {what}: expected sha256 {archive.sha256} (pinned), got {digests.sha256}"
        )


def _write_marker(marker: Path, url: str, digests: _Digests) -> None:
    record = {"url": url, "md5": digests.md5, "sha256": digests.sha256, "size": digests.size}
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, marker)


def _marker_matches(dest: Path, marker: Path, archive: MovieLensArchive) -> bool:
    """True when ``dest`` was verified before and still has the size recorded then."""
    try:
        record = json.loads(marker.read_text())
        size = dest.stat().st_size
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("size") != size:
        return False
    # A pin added or changed since the marker was written forces a new verification.
    return archive.sha256 is None or record.get("sha256") == archive.sha256
