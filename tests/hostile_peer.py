"""A hostile or broken wmx peer for tests: a proxy in front of a real ``wmx serve`` child that
answers one route (the change feed, by default) the way a broken or malicious server would.

Everything else passes through unchanged, so the peer is a registered replica: the client's
probe (the service root) and ``replication/x-node`` are answered truthfully and the engine gets
as far as the hostile answer. The corrupted answers are built from the real one, so they carry
the child's real rows: if the client accepted any part of them, those rows would reach the
parent. Runs on 127.0.0.1 port 0 in threads of the test process; never used by the product.
:func:`run_tool` runs a tool in a fresh interpreter and reports its peak memory, so a test can
tell what the hostile answer cost the run.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import requests

MODES = ("huge", "endless", "gzip-bomb", "non-advancing", "out-of-range", "wrong-types",
         "slow-drip", "silent", "tls-expected")
"""``silent`` accepts every connection and never answers (from the first contact on);
``tls-expected`` is the real child named with ``https://`` (it speaks plain HTTP); the others
corrupt the answers of one route (the change feed by default; ``out-of-range`` also makes an
apply report's counts impossible)."""
TAMPERED = "tampered"
"""A further mode, for ``replication/x-content``: every part's first byte is flipped."""

HUGE_BYTES = 400 * 1024 * 1024
BOMB_BYTES = 1024 * 1024 * 1024
"""What the gzip bomb inflates to (it is about 1 MB on the wire)."""
DRIP_SECONDS = 0.5
_BLOCK = 1024 * 1024


_TOOL_SCRIPT = textwrap.dedent("""
    import json, logging, sys, time
    import wmx
    started = time.monotonic()
    failed_at = []

    class FirstFailure(logging.Handler):
        def emit(self, record):
            if "failed" in record.getMessage() and not failed_at:
                failed_at.append(time.monotonic() - started)

    logging.getLogger("wmx.engine").addHandler(FirstFailure())
    logging.getLogger("wmx.engine").setLevel(logging.INFO)
    try:
        result = getattr(wmx, sys.argv[1])(*sys.argv[2:])
        status, messages = result.getOutput(0), result.getMessages()
    except wmx.ExecuteError as exc:
        status, messages = "raised", str(exc)
    elapsed = time.monotonic() - started
    peak = None
    try:
        with open("/proc/self/status") as status_file:
            for line in status_file:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) // 1024
    except OSError:
        pass
    print(json.dumps({"status": status, "messages": messages, "peak_mb": peak,
                      "failed_after": failed_at[0] if failed_at else None,
                      "elapsed": elapsed}))
""")


def run_tool(tool: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``wmx.<tool>(*args)`` in a fresh interpreter, as a script would, and answer its
    status output (``"raised"`` for an ExecuteError), messages, peak resident memory in MB
    (VmHWM; None where /proc is missing), seconds until the engine first logged a failure,
    and seconds the tool took."""
    done = subprocess.run([sys.executable, "-c", _TOOL_SCRIPT, tool, *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise AssertionError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _forwarded(headers: Any) -> dict[str, str]:
    keep = ("content-type", "content-encoding", "x-esri-authorization", "authorization")
    return {key: value for key, value in headers.items() if key.lower() in keep}


@functools.cache
def gzip_bomb(prefix: bytes, suffix: bytes) -> bytes:
    """``prefix``, :data:`BOMB_BYTES` of spaces, ``suffix``, gzip-compressed. The deflate
    stream is flushed after each 1 MB block, so one compressed block serves for all of them;
    the gzip trailer's CRC is computed over the whole inflated text."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = b" " * _BLOCK
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    middle = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(suffix) + deflate.flush()
    blocks = BOMB_BYTES // _BLOCK
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    size = len(prefix) + blocks * _BLOCK + len(suffix)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + head + middle * blocks + tail + struct.pack("<II", crc, size & 0xFFFFFFFF)


class HostilePeer:
    """``with HostilePeer(upstream_url, mode) as peer:`` then name ``peer.url`` as the child.

    ``upstream_url`` is a real child's service URL; ``route`` the end of the path whose
    answers are corrupted (``"wmserver"``: the service root). With ``as_esri`` the peer denies
    the replication extension (``x-node`` answers Esri's 404 envelope), so clients take it
    for an Esri server."""

    def __init__(self, upstream_url: str, mode: str,
                 route: str = "replication/x-changes", *, as_esri: bool = False) -> None:
        if mode not in (*MODES, TAMPERED):
            raise ValueError(f"unknown mode {mode!r}")
        self.upstream = upstream_url.rstrip("/")
        self.mode = mode
        self.route = route.lower()
        self.as_esri = as_esri
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        if self.mode == "tls-expected":
            return "https://" + self.upstream.split("://", 1)[1]
        path = urlsplit(self.upstream).path
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> HostilePeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer._serve(self)

            def do_POST(self) -> None:
                peer._serve(self)

        return Handler

    # --- answering -------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(f"{handler.command} {handler.path}")
        if self.mode == "silent":
            self._stop.wait()
            return
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        parts = urlsplit(handler.path)
        if self.as_esri and parts.path.lower().endswith("replication/x-node"):
            self._send(handler, 200, b'{"error": {"code": 404, "message": "Not Found"}}')
            return
        base = urlsplit(self.upstream)
        answer = requests.request(
            handler.command, f"{base.scheme}://{base.netloc}{parts.path}",
            params=parse_qs(parts.query), data=body, headers=_forwarded(handler.headers),
            timeout=30)
        try:
            if parts.path.lower().endswith(self.route) and answer.status_code == 200:
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                self._hostile(handler, answer.json(), query)
            else:
                self._send(handler, answer.status_code, answer.content,
                           answer.headers.get("Content-Type", "application/json"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on us, as it should

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes,
              content_type: str = "application/json", **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            handler.send_header(key.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    def _hostile(self, handler: BaseHTTPRequestHandler, real: dict[str, Any],
                 query: dict[str, str]) -> None:
        mode = self.mode
        if mode == TAMPERED:
            data = bytearray(base64.b64decode(real["data"]))
            data[0] ^= 0xFF
            self._send(handler, 200, json.dumps(
                {**real, "data": base64.b64encode(data).decode()}).encode())
            return
        if mode in ("non-advancing", "out-of-range", "wrong-types"):
            since = int(query.get("since", 0))
            changed = {"non-advancing": {"lastSeq": since, "more": True},
                       "out-of-range": {"lastSeq": 10 ** 30, "inserted": -5},
                       "wrong-types": {"lastSeq": str(real.get("lastSeq")), "more": "false"}}[mode]
            self._send(handler, 200, json.dumps({**real, **changed}).encode())
            return
        prefix = json.dumps(real)[:-1].encode() + b', "padding": "'
        suffix = b'"}'
        if mode == "gzip-bomb":
            self._send(handler, 200, gzip_bomb(prefix, suffix), Content_Encoding="gzip")
        elif mode == "slow-drip":
            self._drip(handler, json.dumps(real).encode())
        else:
            self._stream(handler, prefix, suffix, None if mode == "endless" else HUGE_BYTES)

    def _stream(self, handler: BaseHTTPRequestHandler, prefix: bytes, suffix: bytes,
                padding: Optional[int]) -> None:
        """The real answer with ``padding`` bytes inside it (``None``: for ever)."""
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if padding is None:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        else:
            handler.send_header("Content-Length", str(len(prefix) + padding + len(suffix)))
        handler.end_headers()
        handler.wfile.write(prefix)
        block = b"x" * _BLOCK
        sent = 0
        while (padding is None or sent < padding) and not self._stop.is_set():
            piece = block if padding is None else block[:padding - sent]
            handler.wfile.write(piece)
            sent += len(piece)
        handler.wfile.write(suffix)

    def _drip(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for index in range(len(body)):
            if self._stop.wait(DRIP_SECONDS):
                return
            handler.wfile.write(body[index:index + 1])
            handler.wfile.flush()

