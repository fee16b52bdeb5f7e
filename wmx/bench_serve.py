"""``wmx serve`` in a process of its own, for the benchmark figures that go through real
servers: the REST writes on PostgreSQL (``wmx.bench_postgres``) and the replicate over HTTP
(``wmx.bench``), where a server in the benchmark's own process would share its GIL with the
client it answers, which a deployment never does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Optional


class ServeProcess:
    """``wmx serve LOCATION`` in a process of its own; ``url`` once it listens. Its output
    after the first line is read and dropped, so a chatty server never blocks on a full pipe."""

    def __init__(self, location: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wmx", "serve", location, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://\S+", line)
        if not found:
            rest = self.process.stdout.read()[:2000] if self.process.poll() is not None else ""
            self.close()
            raise RuntimeError(f"wmx serve did not start: {line}{rest}")
        self.url = found.group(0).rstrip("/")
        threading.Thread(target=_drain, args=(self.process.stdout,), daemon=True).start()

    def cpu_seconds(self) -> Optional[float]:
        """User + system CPU of the process so far (Linux ``/proc``; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AttributeError):
            return None

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drain(stream: IO[str]) -> None:
    with stream:
        for _line in stream:
            pass
