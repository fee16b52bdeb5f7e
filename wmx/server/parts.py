"""Big content in parts, on the server side of the wire (``docs/wmserver-extension.md``).

Content larger than :data:`wmx.repository.wire.INLINE_CONTENT_BYTES` never travels inside a
request or an answer. A client uploads it in parts to a staging folder (:class:`Staging`) and
names it by reference in ``x-apply`` or ``x-load/rows``, which join the parts, check size and
SHA-256, and only then apply. Answers that carry such content (``x-changes``, ``x-snapshot``,
a dry run's ``written``) name it by reference and keep it for a while (:class:`Outgoing`) for
``x-content`` to hand out part by part. This module never writes outside its staging folder and
never lets a part id name a path.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from wmx.repository.wire import PART_BYTES, ContentRef

MAX_CONTENT_BYTES = 1024 * 1024 * 1024
"""Largest content one reference may stage (1 GiB): far above any attachment a server accepts
through ``attachments/add`` (its request limit), and a bound on what a client can park here."""
MAX_STAGING_BYTES = 4 * MAX_CONTENT_BYTES
"""All parts staged for one repository: beyond, uploads are refused until some are used or
expire (a client cannot fill the server's disk)."""
STALE_SECONDS = 3600.0
"""Staged parts left unused this long are removed (by the next upload)."""
OUTGOING_BYTES = 256 * 1024 * 1024
"""Content an answer referenced, kept for ``x-content`` (least recently used dropped first;
dropped content is read from the repository again)."""
OUTGOING_SECONDS = 600.0
"""How long an answer's content is kept at most (a page is read within seconds)."""
_PART_ID = re.compile(r"^[0-9a-f]{32}$")


class PartsError(ValueError):
    """A part or reference the server cannot use; the message says why (a 400 answer)."""


def _key(location: object) -> str:
    return hashlib.sha256(str(location).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Staging:
    """Parts uploaded for one repository, one file per reference id, written at offsets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _path(self, parts_id: str) -> Path:
        if not isinstance(parts_id, str) or not _PART_ID.match(parts_id):
            raise PartsError("a part id is 32 lower-case hex digits")
        return self.folder / parts_id

    def write(self, parts_id: str, offset: int, data: bytes) -> int:
        """Write one part; a part sent again overwrites the same bytes (replays are harmless).
        Answers the staged size."""
        path = self._path(parts_id)
        if offset + len(data) > MAX_CONTENT_BYTES:
            raise PartsError(f"content beyond {MAX_CONTENT_BYTES} bytes is not accepted")
        if len(data) > PART_BYTES:
            raise PartsError(f"a part holds at most {PART_BYTES} bytes")
        with self._lock:
            staged = self._purge_stale()
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            size = path.stat().st_size if path.exists() else 0
            if offset > size:
                raise PartsError(f"part at offset {offset} sent before the bytes from {size}")
            if staged + max(0, offset + len(data) - size) > MAX_STAGING_BYTES:
                raise PartsError("too much content is staged on this server; send it again "
                                 "later")
            with open(path, "r+b" if path.exists() else "wb") as file:
                file.seek(offset)
                file.write(data)
                return max(size, offset + len(data))

    def read(self, ref: ContentRef) -> bytes:
        """The joined parts of ``ref``, checked against its size and checksum."""
        path = self._path(ref.id)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise PartsError(f"no parts were sent for content {ref.id}") from None
        if len(content) != ref.size or hashlib.sha256(content).hexdigest() != ref.sha256:
            raise PartsError(f"the parts of content {ref.id} do not match its size and "
                             "checksum")
        os.utime(path)
        return content

    def discard(self, parts_ids: list[str]) -> None:
        """Remove the parts of contents a request has used. A request replayed after its
        answer was lost then fails, and the next run sends the content again."""
        for parts_id in parts_ids:
            try:
                self._path(parts_id).unlink(missing_ok=True)
            except (PartsError, OSError):
                continue  # not ours to remove, or already gone

    def _purge_stale(self) -> int:
        """Remove parts unused for :data:`STALE_SECONDS`; answers the bytes still staged."""
        if not self.folder.is_dir():
            return 0
        limit = time.time() - STALE_SECONDS
        staged = 0
        for path in self.folder.iterdir():
            try:
                stat = path.stat()
                if stat.st_mtime < limit:
                    path.unlink()
                else:
                    staged += stat.st_size
            except OSError:
                continue  # another thread removed it, or it is in use: next time
        return staged


_staging: dict[str, Staging] = {}
_staging_lock = threading.Lock()


def staging_for(location: object) -> Staging:
    """The staging area of the repository at ``location``, in the system's temporary folder
    (never beside the repository, whose folder belongs to its user)."""
    key = _key(location)
    with _staging_lock:
        if key not in _staging:
            _staging[key] = Staging(Path(tempfile.gettempdir()) / "wmx-parts" / key)
        return _staging[key]


class Outgoing:
    """Contents that answers referenced, by (repository, checksum), within a byte budget."""

    def __init__(self, budget: int = OUTGOING_BYTES) -> None:
        self.budget = budget
        self._kept: collections.OrderedDict[tuple[str, str], tuple[float, bytes]] = \
            collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def keep(self, location: object, guid: str, content: bytes) -> ContentRef:
        ref = ContentRef.of(guid, content)
        key = (_key(location), ref.sha256)
        with self._lock:
            if key in self._kept:
                self._size -= len(self._kept.pop(key)[1])
            self._kept[key] = (time.monotonic(), content)
            self._size += len(content)
            self._drop(time.monotonic() - OUTGOING_SECONDS)
        return ref

    def get(self, location: object, sha256: str) -> Optional[bytes]:
        with self._lock:
            self._drop(time.monotonic() - OUTGOING_SECONDS)
            kept = self._kept.get((_key(location), sha256))
        return None if kept is None else kept[1]

    def _drop(self, older_than: float) -> None:
        """Oldest first: kept since before ``older_than``, or over budget (the newest content
        stays however big: its parts are being read)."""
        while self._kept:
            kept_at, content = next(iter(self._kept.values()))
            over = self._size > self.budget and len(self._kept) > 1
            if not over and kept_at >= older_than:
                return
            self._kept.popitem(last=False)
            self._size -= len(content)


outgoing = Outgoing()


__all__ = ["MAX_CONTENT_BYTES", "Outgoing", "PartsError", "Staging", "outgoing", "staging_for"]
