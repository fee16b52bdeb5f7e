"""Running the service: ``serve`` (what ``wmx serve`` calls, in the foreground) and
:class:`ServerThread` (a server in a background thread, for tests, the benchmark and notebooks).

Both bind with waitress first and only then announce the URL, so port 0 reports the real port;
a server bound beyond this machine without a token says so (``serve`` on standard error,
:class:`ServerThread` as a logging warning), because anyone who can reach it can then act as any
user (SPEC §2.8). A server stops from any thread by waking
its own event loop, never by a signal or by killing threads (works the same on Windows and
Linux). This module must never print or log a token.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

try:
    import waitress
    from waitress import wasyncore
    from waitress.trigger import trigger as Trigger
except ImportError as exc:  # pragma: no cover - exercised on installs without the extra
    from wmx.server import missing_extra

    raise missing_extra(exc) from None

from wmx.model.locations import ip_address, is_loopback
from wmx.repository.jobs import ServedRepository
from wmx.server.app import DEFAULT_MAX_BODY_BYTES, close_app, create_app, service_of
from wmx.tokens import read_token_file

log = logging.getLogger("wmx.server")

DEFAULT_THREADS = 8
WAITRESS_SLACK_BYTES = 1024 * 1024
RepositoryArg = Union[str, Path, ServedRepository]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _public_host(host: str) -> str:
    """The name URLs use for a bound address: the machine's name for every interface."""
    address = ip_address(host)
    return socket.gethostname() if address is not None and address.is_unspecified else host


class _Running:
    """A bound waitress server on a socket map of its own, stoppable from any thread."""

    def __init__(self, app: Any, host: str, port: int, threads: int,
                 max_body_bytes: int) -> None:
        self.app = app
        self._map: dict[int, Any] = {}
        # waitress refuses (plain 413) only beyond the app's own limit plus some slack, so
        # ordinary oversized requests get the app's JSON envelope.
        self._server = waitress.create_server(
            app, map=self._map, host=host, port=port, threads=threads, ident="wmx",
            max_request_body_size=max_body_bytes + WAITRESS_SLACK_BYTES)
        self._wake = Trigger(self._map)
        listening = getattr(self._server, "effective_listen", None) or [
            (self._server.effective_host, self._server.effective_port)]
        self.host, self.port = str(listening[0][0]), int(listening[0][1])
        service = service_of(app)
        self.url = service.url(f"http://{_url_host(self.host)}:{self.port}")
        service.base_url = f"http://{_url_host(_public_host(self.host))}:{self.port}"
        exposed = service.token is None and not all(is_loopback(str(address[0]))
                                                    for address in listening)
        # The warning a server reachable beyond this machine without a token deserves.
        self.exposure: Optional[str] = (
            f"Serving {service.name} on {self.host} without a token: anyone who can reach port "
            f"{self.port} can act as any Workflow Manager user (the 'user' parameter is "
            "trusted). Start it with --token-file, or bind 127.0.0.1." if exposed else None)

    def run(self) -> None:
        """Serve until :meth:`stop` (or Ctrl+C in the foreground)."""
        self._server.run()

    def stop(self) -> None:
        self._wake.pull_trigger(lambda: wasyncore.close_all(self._map))

    def release(self) -> None:
        self._server.task_dispatcher.shutdown()
        close_app(self.app)


def serve(path: RepositoryArg, host: str = "127.0.0.1", port: int = 0,
          service: Optional[str] = None, token_file: Union[str, Path, None] = None,
          ready_callback: Optional[Callable[[str], None]] = None, *,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, threads: int = DEFAULT_THREADS,
          hosts: Sequence[str] = ()) -> None:
    """Serve the repository at ``path`` until interrupted (Ctrl+C).

    Prints ``Serving <name> at <url>`` once bound (``port=0`` picks a free port and the real
    one is printed) and passes the URL to ``ready_callback``. With ``token_file`` every
    request must carry the file's contents as its token; without one only IP addresses,
    ``localhost``, the machine's name and the ``hosts`` aliases are answered.
    """
    token = read_token_file(token_file) if token_file is not None else None
    running = _Running(create_app(path, service_name=service, token=token,
                                  max_body_bytes=max_body_bytes, hosts=hosts),
                       host, port, threads, max_body_bytes)
    try:
        name = service_of(running.app).name
        log.info("Serving %s at %s%s", name, running.url,
                 " (token required)" if token else "")
        if running.exposure:  # printed like the URL: the console is where serve() talks
            print(f"WARNING: {running.exposure}", file=sys.stderr, flush=True)
        print(f"Serving {name} at {running.url}", flush=True)
        if ready_callback is not None:
            ready_callback(running.url)
        running.run()
    finally:
        running.release()


class ServerThread:
    """A server in a background thread, listening as soon as :meth:`start` returns.

        with ServerThread(path, token="s3cret") as server:
            requests.get(server.url, params={"f": "json"},
                         headers={"X-Esri-Authorization": "Bearer s3cret"})
    """

    def __init__(self, repository: RepositoryArg, *, service: Optional[str] = None,
                 token: Optional[str] = None, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, threads: int = 4,
                 hosts: Sequence[str] = ()) -> None:
        self._repository = repository
        self._hosts = tuple(hosts)
        self._service = service
        self._token = token
        self._host, self._port = host, port
        self._max_body_bytes = max_body_bytes
        self._threads = threads
        self._running: Optional[_Running] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        state = self._running.url if self._running else "stopped"
        return f"<ServerThread {state}>"

    @property
    def running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("The server is not running; call start() first")
        return self._running

    @property
    def url(self) -> str:
        """``http://HOST:PORT/arcgis/rest/services/<SERVICE>/WMServer``."""
        return self.running.url

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def app(self) -> Any:
        return self.running.app

    def start(self) -> ServerThread:
        if self._running is not None:
            return self
        app = create_app(self._repository, service_name=self._service, token=self._token,
                         max_body_bytes=self._max_body_bytes, hosts=self._hosts)
        try:
            self._running = _Running(app, self._host, self._port, self._threads,
                                     self._max_body_bytes)
        except BaseException:
            close_app(app)
            raise
        if self._running.exposure:
            log.warning("%s", self._running.exposure)
        self._thread = threading.Thread(target=self._running.run, daemon=True,
                                        name=f"wmx-server-{self._running.port}")
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish in-flight requests, release the repository."""
        running, thread = self._running, self._thread
        if running is None or thread is None:
            return
        running.stop()
        thread.join(timeout)
        running.release()
        self._running = self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_THREADS", "ServerThread", "serve"]
