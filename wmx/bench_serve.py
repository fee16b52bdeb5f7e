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
        return process_cpu_seconds(self.process.pid)

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


def process_cpu_seconds(pid: int | str) -> Optional[float]:
    """User + system CPU of a process so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def postgres_cpu_seconds() -> Optional[float]:
    """CPU so far of this machine's PostgreSQL server processes (a throwaway cluster's;
    Linux ``/proc``; None elsewhere). A backend that exited since is not counted: the
    benchmark's connections are pooled and live through a measurement."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"postgres"):
                continue
        except OSError:
            continue
        total += process_cpu_seconds(entry.name) or 0.0
    return total


def machine_cpu_seconds() -> Optional[tuple[float, float]]:
    """(busy, elapsed) CPU seconds of the whole machine so far, over all its cores (Linux
    ``/proc/stat``; None elsewhere): what the servers, PostgreSQL and the load generator
    left of the cores shows whether a figure is bound by the machine."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0]
                 .split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    per_second = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / per_second, sum(ticks) / per_second


def _drain(stream: IO[str]) -> None:
    with stream:
        for _line in stream:
            pass
