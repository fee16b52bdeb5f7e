"""Polling an Esri server is tens of thousands of small GETs (seven per job): each must cost the
client little CPU, reuse its connection, and stay within the bounded reader's deadline.

Real servers on 127.0.0.1 port 0, in threads of the test process: a keep-alive WMServer stand-in
that counts its connections, and raw sockets that answer one byte at a time.
"""

from __future__ import annotations

import gc
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from wmx.remote.esri_client import EsriClient, probe_node
from wmx.remote.esri_tokens import TokenSource
from wmx.repository.base import RepositoryTimeout, RepositoryUnavailable

pytestmark = pytest.mark.http

SERVICE = "/arcgis/rest/services/Poll/WMServer"
TOKEN = "poll-token-3c1f"


class _Counting(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.connections = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        with self.lock:
            self.connections += 1
        return super().get_request()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one segment (else Nagle and delayed ACKs: 40 ms)
    server: _Counting

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(self.path)
        if self.server.delay:
            time.sleep(self.server.delay)
        body = b'{"holds": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[_Counting]:
    counting = _Counting(getattr(request, "param", 0.0))
    thread = threading.Thread(target=counting.serve_forever, daemon=True)
    thread.start()
    yield counting
    counting.shutdown()
    counting.server_close()
    thread.join(5)


def _url(server: _Counting) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{SERVICE}"


@pytest.mark.parametrize("server", [0.02], indirect=True)
def test_a_poll_runs_its_connections_in_parallel_and_keeps_each_one_alive(server) -> None:
    """240 answers of 20 ms each through 12 connections: 0.4 s when all 12 wait at once."""
    client = EsriClient(_url(server), tokens=TokenSource(token=TOKEN), connections=12)
    try:
        started = time.monotonic()
        answers = client.map(lambda job_id: client.get(f"jobs/{job_id}/holds"), range(240))
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert answers == [{"holds": []}] * 240
    assert server.connections <= 12, f"{server.connections} connections for 12 workers"
    assert elapsed < 1.6, f"{elapsed:.2f} s: the connections did not wait in parallel"


def test_a_poll_costs_the_client_little_more_cpu_than_bare_http_requests(server) -> None:
    """Measured side by side on this thread's CPU clock, the least of four rounds each, so a
    busy machine moves both: the client's work per request (token, query, bounded reading, the
    JSON answer checked) stays within a small multiple of http.client sending the same GET on
    one kept-alive socket (a ``requests`` session cost 6-9 times as much)."""
    per_round = 250
    query = urlencode({"f": "json", "token": TOKEN})
    bare = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    client = EsriClient(_url(server), tokens=TokenSource(token=TOKEN), connections=1)
    bare_cpu, client_cpu = [], []
    # Late in a long test session the heap is large, and a garbage collection pass costs
    # whichever code happens to allocate (the client, mostly): it is not the client's work.
    gc.collect()
    gc.disable()
    try:
        for _ in range(4):
            started = time.thread_time()
            for job_id in range(per_round):
                bare.request("GET", f"{SERVICE}/jobs/{job_id}/holds?{query}",
                             headers={"Accept-Encoding": "gzip"})
                assert bare.getresponse().read() == b'{"holds": []}'
            bare_cpu.append(time.thread_time() - started)
            started = time.thread_time()
            for job_id in range(per_round):
                client.get(f"jobs/{job_id}/holds")
            client_cpu.append(time.thread_time() - started)
    finally:
        gc.enable()
        client.close()
        bare.close()
    ratio = min(client_cpu) / min(bare_cpu)
    print(f"\nclient {min(client_cpu) / per_round * 1000:.3f} ms/request, bare "
          f"{min(bare_cpu) / per_round * 1000:.3f} ms/request, ratio {ratio:.2f}")
    assert ratio < 5.0, f"the client costs {ratio:.1f}x the CPU of bare requests"


def test_the_proxy_the_environment_names_carries_the_poll(server, monkeypatch) -> None:
    """The environment is read once, when the client is made; its proxy then carries every
    request (the stand-in answers as the proxy would, from the absolute URL it is sent)."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    client = EsriClient(f"http://wm.invalid{SERVICE}", tokens=TokenSource(token=TOKEN))
    monkeypatch.delenv("HTTP_PROXY")
    try:
        assert client.map(lambda job_id: client.get(f"jobs/{job_id}/holds"), range(3)) == [
            {"holds": []}] * 3
    finally:
        client.close()
    assert sorted(path.split("?")[0] for path in server.paths) == [
        f"http://wm.invalid{SERVICE}/jobs/{job_id}/holds" for job_id in range(3)]


def _dripping(answer: bytes, stop: threading.Event) -> socket.socket:
    """A listener whose every connection gets ``answer`` one byte each 0.1 s."""
    listener = socket.create_server(("127.0.0.1", 0))

    def drip(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            for index in range(len(answer)):
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(answer[index:index + 1])
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


BODY = b'{"error": {"code": 404, "message": "Not Found", "details": []}}' + b" " * 40
DRIPPED = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
           + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


@pytest.fixture
def dripping() -> Iterator[str]:
    stop = threading.Event()
    listener = _dripping(DRIPPED, stop)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}{SERVICE}"
    stop.set()
    listener.close()


def test_a_first_contact_answered_one_byte_at_a_time_fails_at_its_deadline(dripping) -> None:
    """Each byte comes well within a socket read's timeout; the probe as a whole (about 17 s
    of dripping) must still end at its one-second deadline."""
    started = time.monotonic()
    with pytest.raises(RepositoryTimeout, match="did not answer within 1 s"):
        probe_node(dripping, tokens=TokenSource(token=TOKEN), timeout=1.0)
    assert time.monotonic() - started < 2.0


def test_a_poll_answered_one_byte_at_a_time_fails_at_its_deadline_once(dripping) -> None:
    client = EsriClient(dripping, tokens=TokenSource(token=TOKEN), timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(RepositoryTimeout, match="did not answer within 1 s") as failed:
            client.get("jobs/1/holds")
    finally:
        client.close()
    assert time.monotonic() - started < 2.0
    assert TOKEN not in str(failed.value)


def test_a_server_that_stopped_listening_is_unavailable_and_its_token_is_not_shown() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    client = EsriClient(f"http://127.0.0.1:{port}{SERVICE}", tokens=TokenSource(token=TOKEN))
    try:
        with pytest.raises(RepositoryUnavailable, match="Cannot reach") as failed:
            client.get("jobs")
    finally:
        client.close()
    assert TOKEN not in str(failed.value)


def test_a_short_deadline_set_while_a_longer_one_waits_still_ends_on_time(dripping) -> None:
    """One watchdog serves every request's deadline and sleeps until the earliest: a request
    with a shorter timeout, started later, must wake it sooner."""
    patient = EsriClient(dripping, tokens=TokenSource(token=TOKEN), timeout=6.0)
    hasty = EsriClient(dripping, tokens=TokenSource(token=TOKEN), timeout=1.0)
    outcome: list[BaseException] = []

    def wait_patiently() -> None:
        try:
            patient.get("jobs")
        except RepositoryTimeout as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_patiently, daemon=True)
    try:
        waiting.start()
        time.sleep(0.3)  # the watchdog now sleeps until the patient request's end
        started = time.monotonic()
        with pytest.raises(RepositoryTimeout, match="did not answer within 1 s"):
            hasty.get("jobs/1/holds")
        assert time.monotonic() - started < 2.0
    finally:
        hasty.close()
        waiting.join(10)
        patient.close()
    assert len(outcome) == 1, "the patient request ends at its own deadline"
