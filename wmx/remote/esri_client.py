"""HTTP to an Esri Workflow Manager (Classic) WMServer, through its documented surface only.

One keep-alive :class:`~wmx.repository.transport.Channel` (a connection per concurrent request,
the environment read once: a poll is tens of thousands of requests), a bounded pool of
concurrent requests, ``f=json`` on every call, the token as Esri's ``token`` parameter, the
``user`` parameter on every write, and every answer checked for Esri's HTTP-200 error envelope.
Failures become :mod:`wmx.repository.base` errors whose text names the service and never holds
the token. This module knows paths and parameters; it must never decide what to read or write
(that is :mod:`wmx.remote.esri`).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NoReturn, Optional, TypeVar

import requests

from wmx.model import codec
from wmx.remote.esri_tokens import TokenSource
from wmx.repository.base import (
    InvalidRequest,
    NotAuthorized,
    RepositoryError,
    RepositoryNotFound,
    RepositoryTimeout,
    RepositoryUnavailable,
)
from wmx.repository.transport import (
    Answer,
    AnswerMalformed,
    AnswerTooLarge,
    Channel,
    Files,
    TransportTimeout,
    default_timeout,
    exchange,
    new_session,
    retry_policy,
)

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_CONNECTIONS = 8
MAX_ANSWER_BYTES = 48 * 1024 * 1024
"""Ceiling of one JSON answer (a job list of a very large server fits many times over)."""
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
"""Ceiling of one attachment download."""
PROBE_BYTES = 1024 * 1024
"""Ceiling of the first-contact answer (a NodeInfo, or Esri's error page)."""
TOKEN_CODES = (498, 499)


def default_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""


class EsriClient:
    """Requests to one WMServer service root (``…/WMServer``)."""

    def __init__(self, url: str, *, tokens: TokenSource, user: Optional[str] = None,
                 timeout: Optional[float] = None, connections: int = DEFAULT_CONNECTIONS,
                 verify: bool | str = True) -> None:
        self.url = url.rstrip("/")
        self.user = (user if user is not None else default_user()).strip().replace("\\", "|")
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.connections = max(1, int(connections))
        self.tokens = tokens
        # Reads are replayed after a broken connection or a 502-504; writes are not (Esri's
        # writes are not idempotent: a lost reply is settled by comparing, the next time).
        self.channel = Channel(self.url, retry=retry_policy(2, 0.1, replay=True,
                                                            any_method=False),
                               connections=self.connections, verify=verify)
        self._pool: Optional[ThreadPoolExecutor] = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.channel.close()

    # --- concurrency ------------------------------------------------------------------------

    def map(self, function: Callable[[T], U], items: Iterable[T]) -> list[U]:
        """``function`` over ``items`` with at most ``connections`` requests in flight; the
        first failure is raised once the others have finished."""
        items = list(items)
        if len(items) <= 1 or self.connections == 1:
            return [function(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="wmx-esri")
        return list(self._pool.map(function, items))

    # --- requests ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self.tokens.secrets():
            text = text.replace(secret, "***")
        return text

    def _send(self, method: str, path: str, params: dict[str, Any],
              files: Optional[Files] = None, raw: bool = False) -> Any:
        url = f"{self.url}/{path}" if path else self.url
        for attempt in (1, 2):
            query = {**params, "f": "file" if raw else "json"}
            token = self.tokens.token()
            if token:
                query["token"] = token
            try:
                answer = self.channel.exchange(
                    method, url, timeout=self.timeout,
                    max_bytes=MAX_DOWNLOAD_BYTES if raw else MAX_ANSWER_BYTES,
                    fields=query, files=files)
            except TransportTimeout:
                raise RepositoryTimeout(
                    f"{self.url} did not answer within {self.timeout:g} s ({method} "
                    f"{path or 'service root'}); timed out") from None
            except AnswerTooLarge:
                raise RepositoryError(f"{self.url} sent an answer too large to read ({method} "
                                      f"{path or 'service root'}); refused") from None
            except AnswerMalformed as exc:
                raise RepositoryError(f"{self.url} sent a malformed answer: {exc}") from None
            except requests.RequestException as exc:
                raise RepositoryUnavailable(self._scrub(
                    f"Cannot reach {self.url}: {type(exc).__name__}")) from None
            try:
                return self._answer(answer, raw)
            except NotAuthorized:
                if attempt == 1 and self.tokens.generates and self.tokens.renew():
                    continue  # the generated token expired early or was revoked: once more
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, response: Answer, raw: bool) -> Any:
        status = response.status
        if raw and status == 200 and not response.headers.get(
                "Content-Type", "").startswith(("application/json", "text/plain")):
            return bytes(response.content)
        try:
            payload = codec.loads(bytes(response.content)) if response.content else None
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            self._raise_envelope(payload["error"])
        if status != 200:
            self._raise(status, f"{self.url} answered HTTP {status}")
        if raw:
            return bytes(response.content)
        if not isinstance(payload, dict):
            raise RepositoryError(f"{self.url} did not answer with JSON")
        return payload

    def _raise_envelope(self, error: dict[str, Any]) -> NoReturn:
        message = str(error.get("message") or "error")
        details = [str(d) for d in error.get("details") or [] if str(d) != message]
        code = error.get("code")
        self._raise(code if isinstance(code, int) else 500, self._scrub(
            f"{self.url}: {message}" + (f" ({'; '.join(details)})" if details else "")))

    @staticmethod
    def _raise(code: int, text: str) -> NoReturn:
        if code in (401, 403, *TOKEN_CODES):
            raise NotAuthorized(text)
        if code == 404:
            raise InvalidRequest(text)
        if code in (502, 503, 504):
            raise RepositoryUnavailable(text)
        if 400 <= code < 500:
            raise InvalidRequest(text)
        raise RepositoryError(text)

    def get(self, path: str = "", **params: Any) -> dict[str, Any]:
        return self._send("GET", path, params)

    def content(self, path: str) -> bytes:
        return self._send("GET", path, {}, raw=True)

    def post(self, path: str, files: Optional[Files] = None,
             **form: Any) -> dict[str, Any]:
        """A write, as the configured user (Esri requires ``user`` on writes)."""
        if not self.user:
            raise InvalidRequest("No Workflow Manager user name for writes: set WMX_USER")
        return self._send("POST", path, {"user": self.user, **form}, files=files)

    def root(self) -> dict[str, Any]:
        try:
            return self.get()
        except InvalidRequest as exc:
            raise RepositoryNotFound(str(exc)) from None


def probe_node(url: str, *, tokens: TokenSource, timeout: float = 30.0,
               verify: bool | str = True) -> Optional[dict[str, Any]]:
    """Tell an Esri WMServer from ``wmx serve`` on first contact: the one request outside
    Esri's surface it ever receives is this probe of the ``replication/x-node`` extension,
    which an Esri server answers with its error envelope or 404 (then None). A wmx server
    answers with its identity, returned as it came so that the client need not ask again."""
    query: dict[str, Any] = {"f": "json"}
    token = tokens.token()
    if token:
        query["token"] = token
    # Through the bounded reader, on connections that its deadline can cut (a plain session's
    # would let a peer dripping bytes hold the probe for ever): this first contact may be with
    # a hostile or silent peer.
    with new_session({url: retry_policy(0, 0, replay=False, any_method=False)}) as session:
        try:
            response = exchange(session, "GET", f"{url.rstrip('/')}/replication/x-node",
                                timeout=timeout, max_bytes=PROBE_BYTES, params=query,
                                verify=verify, allow_redirects=False)
        except TransportTimeout:
            raise RepositoryTimeout(f"{url} did not answer within {timeout:g} s") from None
        except (requests.RequestException, AnswerTooLarge, AnswerMalformed) as exc:
            raise RepositoryUnavailable(f"Cannot reach {url}: {type(exc).__name__}") from None
    try:
        payload = codec.loads(bytes(response.content)) if response.content else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "nodeId" in payload:
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        code = payload["error"].get("code")
        if code in (401, 403, *TOKEN_CODES):
            message = str(payload["error"].get("message") or "token refused")
            for secret in tokens.secrets():
                message = message.replace(secret, "***")
            raise NotAuthorized(f"{url}: {message}")
        return None
    if response.status == 404:
        return None
    raise RepositoryNotFound(f"{url} is not a WMServer service (HTTP {response.status})")
