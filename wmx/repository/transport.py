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
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union, cast
from urllib.parse import urlencode, urlsplit

import attrs
import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH, default_user_agent, get_environ_proxies
from urllib3 import PoolManager, ProxyManager, Timeout, make_headers
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.filepost import encode_multipart_formdata
from urllib3.response import BaseHTTPResponse
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
of bodies and content (wmx.store.rows.PAGE_BYTES, plus one element, whose content is
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
        self._wakes_at: Optional[float] = None
        """When the thread's wait ends (None: until a deadline is watched)."""

    def watch(self, deadline: _Deadline) -> None:
        with self._wake:
            while self._pending and self._pending[0][2].done:  # finished requests
                heapq.heappop(self._pending)
            heapq.heappush(self._pending, (deadline.end, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wmx-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._wakes_at is None or deadline.end < self._wakes_at:
                self._wake.notify()  # it would sleep past this deadline (not once a request)

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._pending and (self._pending[0][0] <= now
                                         or self._pending[0][2].done):
                    heapq.heappop(self._pending)[2].expire()
                self._wakes_at = self._pending[0][0] if self._pending else None
                self._wake.wait(None if self._wakes_at is None else self._wakes_at - now)


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
                content = _read(response.headers, response.raw, deadline, max_bytes)
            finally:
                response.close()
        except requests.RequestException as exc:
            if deadline.expired or isinstance(exc, requests.Timeout) or _timed_out(exc):
                raise TransportTimeout() from None
            raise
        if deadline.expired:
            raise TransportTimeout()
    return Answer(response.status_code, response.reason or "", response.headers, content)


Fields = Mapping[str, Any]
"""Form or query fields, encoded as ``requests`` does: ``None`` left out, a list or tuple sent
as repeated fields, anything else as its ``str``."""
Files = Mapping[str, tuple[str, bytes]]
"""Multipart file parts: field name -> (file name, content)."""
POOL_CLASSES = {"http": _Pool, "https": _TLSPool}


class Channel:
    """Keep-alive requests to one server straight over urllib3, with :func:`exchange`'s
    guarantees (one deadline per request, byte ceilings, no replay after a timeout).

    For a client that polls: a poll of a large Esri server is tens of thousands of small
    requests, and a ``requests`` session spends more CPU on each (merging settings, scanning
    the environment and the CA bundle path, cookies, hooks, parsing the URL three times) than
    the exchange itself. The environment (proxy, CA bundle) is read once, here; cookies are not
    kept (nothing this project talks to relies on them). ``connections`` connections stay
    open for reuse, one per concurrent caller."""

    def __init__(self, url: str, *, retry: Retry, connections: int,
                 verify: Union[bool, str] = True) -> None:
        self._retry = retry
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"} if verify is False else {
            "cert_reqs": "CERT_REQUIRED", **_ca_location(verify)}
        proxy = _environment_proxy(url)
        manager: PoolManager
        if proxy is None:
            manager = PoolManager(num_pools=4, maxsize=connections, **tls)
        else:
            auth = urlsplit(proxy)
            headers = make_headers(proxy_basic_auth=f"{auth.username}:{auth.password or ''}"
                                   ) if auth.username else None
            manager = ProxyManager(proxy, num_pools=4, maxsize=connections,
                                   proxy_headers=headers, **tls)
        manager.pool_classes_by_scheme = POOL_CLASSES
        self._manager = manager
        self._headers = {"User-Agent": default_user_agent(), "Accept-Encoding": "gzip",
                         "Accept": "*/*", "Connection": "keep-alive"}
        self._form_headers = {**self._headers,
                              "Content-Type": "application/x-www-form-urlencoded"}

    def close(self) -> None:
        self._manager.clear()

    def exchange(self, method: str, url: str, *, timeout: float, max_bytes: int,
                 fields: Optional[Fields] = None, files: Optional[Files] = None) -> Answer:
        """``method`` ``url`` with ``fields`` (in the query of a GET, else the form body) and
        its whole answer within ``timeout`` seconds and ``max_bytes``. Raises as
        :func:`exchange` does; the ``requests`` exception of a broken connection names only the
        kind of failure (the URL may hold a token)."""
        pairs = _pairs(fields or {})
        body: Optional[bytes] = None
        headers = self._headers
        if method == "GET":
            url = f"{url}?{urlencode(pairs)}" if pairs else url
        elif files:
            body, kind = encode_multipart_formdata(
                [*pairs, *((name, (filename, content)) for name, (filename, content)
                           in files.items())])
            headers = {**self._headers, "Content-Type": kind}
        else:
            body, headers = urlencode(pairs).encode("ascii"), self._form_headers
        with _Deadline(timeout) as deadline:
            try:
                response = self._manager.urlopen(
                    method, url, body=body, headers=headers, retries=self._retry,
                    redirect=False, preload_content=False, decode_content=False,
                    timeout=Timeout(connect=min(deadline.remaining(), CONNECT_SECONDS),
                                    read=deadline.remaining()))
            except Urllib3Error as exc:
                reason = getattr(exc, "reason", None) or exc
                if deadline.expired or _is_timeout(exc) or _is_timeout(reason):
                    raise TransportTimeout() from None
                broken = requests.exceptions.SSLError if isinstance(
                    reason, Urllib3SSLError) else requests.ConnectionError
                raise broken(type(reason).__name__) from None
            try:
                content = _read(response.headers, response, deadline, max_bytes)
            except BaseException:
                response.close()  # read part-way: the connection cannot carry another request
                raise
            finally:
                response.release_conn()
            if deadline.expired:
                raise TransportTimeout()
        return Answer(response.status, response.reason or "", response.headers, content)


def _pairs(fields: Fields) -> list[tuple[str, str]]:
    return [(key, str(item)) for key, value in fields.items()
            for item in (value if isinstance(value, (list, tuple)) else (value,))
            if item is not None]


def _environment_proxy(url: str) -> Optional[str]:
    """The proxy the environment names for ``url`` (``NO_PROXY`` honoured), as requests
    would pick it."""
    proxies = get_environ_proxies(url)
    scheme = urlsplit(url).scheme.lower()
    return proxies.get(scheme) or proxies.get("all") or None


def _ca_location(verify: Union[bool, str]) -> dict[str, str]:
    """The CA certificates to trust: ``verify`` when it names them, else the environment's
    bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), else certifi's, as requests does."""
    location = verify if isinstance(verify, str) else (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        or DEFAULT_CA_BUNDLE_PATH)
    return {"ca_cert_dir": location} if os.path.isdir(location) else {"ca_certs": location}


def _timed_out(exc: requests.RequestException) -> bool:
    """Whether a transport error was a timeout that :class:`_Retry` ended (requests reports
    a read timeout inside a ``MaxRetryError`` as a mere ``ConnectionError``)."""
    return _is_timeout(getattr(exc.args[0] if exc.args else None, "reason", None))


def _is_timeout(error: Optional[BaseException]) -> bool:
    """urllib3 still derives a refused connection from its connect timeout: not a timeout."""
    return isinstance(error, Urllib3Timeout) and not isinstance(error, NewConnectionError)


def _read(headers: Mapping[str, str], raw: BaseHTTPResponse, deadline: _Deadline,
          max_bytes: int) -> bytearray:
    """The body, inflated if gzip-encoded, never holding more than ``max_bytes`` of either."""
    declared = (headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge()
    encoding = (headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise AnswerMalformed(f"unsupported Content-Encoding {encoding!r}")
    inflater = _Inflater(max_bytes) if encoding == "gzip" else None
    body = bytearray()
    received = 0
    try:
        while True:
            chunk = raw.read(READ_CHUNK, decode_content=False)
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
           "TIMEOUT_VARIABLE", "Answer", "AnswerMalformed", "AnswerTooLarge", "Channel",
           "Fields", "Files", "TransportTimeout",
           "default_timeout", "exchange", "new_session", "retry_policy"]
