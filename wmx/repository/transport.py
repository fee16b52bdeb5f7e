"""One bounded HTTP exchange: the only way the REST client reads a server's answer.

Every request runs under a whole-request deadline (connecting, sending, waiting for the
headers and reading the body, retries included) and every answer is read streamed under a
byte ceiling, before and after gzip inflation, so no peer can hold a run past its timeout or
grow its memory past the ceiling: a slow drip, a silent server, an endless body or a
compression bomb fails that one request. A request that timed out is never replayed. This
module knows nothing of WMServer or of repositories; it must never log or keep a header (the
token travels in one) and never read an answer without a ceiling.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import zlib
from collections.abc import Mapping
from http.client import HTTPException
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, TypeVar, cast

import attrs
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

RETRY_STATUSES = (502, 503, 504)
INSUFFICIENT_STORAGE = 507
"""A server whose disk is full (WebDAV's code, RFC 4918): not retried in the same run."""
DEFAULT_TIMEOUT = 30.0
"""Seconds one request may take in all (connecting, retries and the whole answer included)."""
TIMEOUT_VARIABLE = "WMX_TIMEOUT"
"""Environment variable that overrides :data:`DEFAULT_TIMEOUT` (seconds)."""
MAX_ANSWER_BYTES = 48 * 1024 * 1024
"""Ceiling of one JSON answer, as sent and once inflated. A wmx server's pages stop near 16 MB
of bodies and content (wmx.repository.embedded.PAGE_BYTES, plus one element, whose content is
split off above wmx.repository.wire.INLINE_CONTENT_BYTES), so honest answers stay well below;
a peer sending more is cut off here, before its answer costs more memory."""
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
"""Ceiling of one attachment download (Esri's ``attachments/{id}/content``)."""
CONNECT_SECONDS = 10.0
"""Longest wait for a connection and its TLS handshake (within the request's deadline): an
``https://`` URL naming a plain-HTTP server never completes the handshake, and fails here."""
READ_CHUNK = 1024 * 1024


def default_timeout() -> float:
    """:data:`TIMEOUT_VARIABLE` when set, else :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86400:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds (got {text!r})")
    return seconds


class TransportTimeout(Exception):
    """The request's deadline passed before its answer was complete."""


class AnswerTooLarge(Exception):
    """The answer (as sent or once inflated) passed the byte ceiling; reading stopped there."""


class AnswerMalformed(Exception):
    """The answer's encoding is broken or unsupported (bad gzip, unknown Content-Encoding)."""


@attrs.frozen
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    """Case-insensitive, as HTTP header names are."""
    content: bytearray
    """Kept as read (not copied into ``bytes``: an answer may be tens of megabytes)."""


class _Deadline:
    """A request's end. At the deadline the socket in use is shut down, which wakes a read
    blocked in any thread on any platform; later attempts (retries) are refused."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def attach(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def __enter__(self) -> _Deadline:
        _active.deadline = self
        _watchdog.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done = True
        _active.deadline = None


class _Watchdog:
    """One thread expires every deadline of the process, at its end (a timer thread per
    request cost more than a loopback request itself)."""

    def __init__(self) -> None:
        self._pending: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def watch(self, deadline: _Deadline) -> None:
        with self._wake:
            while self._pending and self._pending[0][2].done:  # finished requests
                heapq.heappop(self._pending)
            heapq.heappush(self._pending, (deadline.end, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wmx-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._pending[0][2] is deadline:  # the earliest now: wake up sooner
                self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._pending and (self._pending[0][0] <= now
                                         or self._pending[0][2].done):
                    heapq.heappop(self._pending)[2].expire()
                self._wake.wait(self._pending[0][0] - now if self._pending else None)


_watchdog = _Watchdog()


def _shutdown(sock: socket.socket) -> None:
    """The plain socket call even for a TLS socket (its own ``shutdown`` would drop the TLS
    state under a reader in another thread)."""
    with contextlib.suppress(OSError):  # already closed: nothing left to wake
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_active = threading.local()


def _deadline() -> Optional[_Deadline]:
    return getattr(_active, "deadline", None)


class _DeadlineMixin:
    """Connections register their socket with the calling thread's deadline."""

    sock: Optional[socket.socket]

    def _new_conn(self) -> socket.socket:
        deadline = _deadline()
        if deadline is not None and deadline.expired:
            raise ConnectTimeoutError(self, "the request's deadline passed")
        sock = super()._new_conn()  # type: ignore[misc]
        if deadline is not None:
            deadline.attach(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = _deadline()
        if deadline is not None:
            deadline.attach(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _Connection(_DeadlineMixin, HTTPConnection):
    pass


class _TLSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


if TYPE_CHECKING:  # urllib3 2 only; annotations are never evaluated at run time
    from urllib3.response import BaseHTTPResponse

_R = TypeVar("_R", bound=Retry)


class _Retry(Retry):
    """urllib3's retries, except that a timeout (or anything after the deadline) is final:
    a peer that did not answer in time is not given the time again."""

    def increment(self: _R, method: Optional[str] = None, url: Optional[str] = None,
                  response: Optional[BaseHTTPResponse] = None,
                  error: Optional[Exception] = None, _pool: Optional[ConnectionPool] = None,
                  _stacktrace: Optional[TracebackType] = None) -> _R:
        deadline = _deadline()
        if _is_timeout(error) or (deadline is not None and deadline.expired):
            # urllib3 raises it with the pool it was given, None included
            raise MaxRetryError(cast(ConnectionPool, _pool), url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def retry_policy(retries: int, backoff: float, *, replay: bool, any_method: bool) -> Retry:
    """Connection failures are retried (nothing reached the server); 502/503/504 answers and
    broken reads only where replaying the request is harmless; timeouts never."""
    again = retries if replay else 0
    return _Retry(total=retries, connect=retries, read=again, status=again, other=0,
                  allowed_methods=None if any_method else Retry.DEFAULT_ALLOWED_METHODS,
                  status_forcelist=RETRY_STATUSES, backoff_factor=backoff,
                  raise_on_status=False, respect_retry_after_header=False)


def new_session(policies: dict[str, Retry]) -> requests.Session:
    """A keep-alive session with a retry policy per URL prefix (the longest prefix wins)."""
    session = requests.Session()
    for prefix, retry in policies.items():
        session.mount(prefix, _Adapter(max_retries=retry, pool_maxsize=8))
    return session


def exchange(session: requests.Session, method: str, url: str, *, timeout: float,
             max_bytes: int, **kwargs: Any) -> Answer:
    """One request and its whole answer within ``timeout`` seconds and ``max_bytes``.

    Raises :class:`TransportTimeout`, :class:`AnswerTooLarge`, :class:`AnswerMalformed` or
    a ``requests`` exception (the connection could not be made or broke)."""
    headers = {"Accept-Encoding": "gzip", **kwargs.pop("headers", {})}
    with _Deadline(timeout) as deadline:
        try:
            response = session.request(
                method, url, headers=headers, stream=True,
                timeout=(min(deadline.remaining(), CONNECT_SECONDS), deadline.remaining()),
                **kwargs)
            try:
                content = _read(response, deadline, max_bytes)
            finally:
                response.close()
        except requests.RequestException as exc:
            if deadline.expired or isinstance(exc, requests.Timeout) or _timed_out(exc):
                raise TransportTimeout() from None
            raise
        if deadline.expired:
            raise TransportTimeout()
    return Answer(response.status_code, response.reason or "", response.headers, content)


def _timed_out(exc: requests.RequestException) -> bool:
    """Whether a transport error was a timeout that :class:`_Retry` ended (requests reports
    a read timeout inside a ``MaxRetryError`` as a mere ``ConnectionError``)."""
    return _is_timeout(getattr(exc.args[0] if exc.args else None, "reason", None))


def _is_timeout(error: Optional[BaseException]) -> bool:
    """urllib3 still derives a refused connection from its connect timeout: not a timeout."""
    return isinstance(error, Urllib3Timeout) and not isinstance(error, NewConnectionError)


def _read(response: requests.Response, deadline: _Deadline, max_bytes: int) -> bytearray:
    """The body, inflated if gzip-encoded, never holding more than ``max_bytes`` of either."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge()
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise AnswerMalformed(f"unsupported Content-Encoding {encoding!r}")
    inflater = _Inflater(max_bytes) if encoding == "gzip" else None
    body = bytearray()
    received = 0
    try:
        while True:
            chunk = response.raw.read(READ_CHUNK, decode_content=False)
            if deadline.expired:
                raise TransportTimeout()
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise AnswerTooLarge()
            if inflater is None:
                body += chunk
            else:
                inflater.feed(chunk)
    except (OSError, ValueError, HTTPException, Urllib3Error) as exc:
        if deadline.expired:
            raise TransportTimeout() from None
        raise requests.ConnectionError(f"the answer broke off: {exc}") from None
    return body if inflater is None else inflater.result()


class _Inflater:
    """gzip decoding (several members, as RFC 1952 allows) with a ceiling on the output."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.out = bytearray()
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        while data:
            room = min(READ_CHUNK, self.max_bytes - len(self.out) + 1)  # small steps: no copy
            try:
                self.out += self._zlib.decompress(data, room)
            except zlib.error:
                raise AnswerMalformed("the gzip-encoded answer is corrupt") from None
            if len(self.out) > self.max_bytes:
                raise AnswerTooLarge()
            if self._zlib.unconsumed_tail:
                data = self._zlib.unconsumed_tail
            elif self._zlib.eof and self._zlib.unused_data:
                data = self._zlib.unused_data
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""

    def result(self) -> bytearray:
        if not self._zlib.eof and self.out:
            raise AnswerMalformed("the gzip-encoded answer is truncated")
        return self.out


__all__ = ["DEFAULT_TIMEOUT", "INSUFFICIENT_STORAGE", "MAX_ANSWER_BYTES", "MAX_DOWNLOAD_BYTES",
           "TIMEOUT_VARIABLE", "Answer", "AnswerMalformed", "AnswerTooLarge", "TransportTimeout",
           "default_timeout", "exchange", "new_session", "retry_policy"]
