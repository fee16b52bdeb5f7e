"""Helpers for the command-line tests: ``wmx`` run as a real process, piped or under a
pseudo-terminal, the way an administrator (or a scheduled task) runs it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from typing import Any, Optional

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def wmx(*args: object, env: Optional[dict[str, str]] = None, cwd: object = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m wmx ARGS`` with pipes (not a terminal); ``env`` adds to the environment."""
    return subprocess.run([sys.executable, "-m", "wmx", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


def wmx_json(*args: object, env: Optional[dict[str, str]] = None) -> tuple[int, dict[str, Any]]:
    """Run with --json; standard output must be exactly one JSON document."""
    done = wmx(*args, "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def wmx_here(*args: object, env: Optional[dict[str, str]] = None
             ) -> subprocess.CompletedProcess:
    """``wmx.cli.main(ARGS)`` in this process (no interpreter start-up: a tenth of the time),
    output captured; the environment and logging it changes are put back afterwards."""
    from wmx.cli import main

    saved_environment = dict(os.environ)
    root, engine = logging.getLogger(), logging.getLogger("wmx.engine")
    saved_logging = (list(root.handlers), root.level, engine.level)
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(arg) for arg in args])
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        root.handlers[:], level, engine_level = saved_logging
        root.setLevel(level)
        engine.setLevel(engine_level)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def wmx_here_json(*args: object, env: Optional[dict[str, str]] = None
                  ) -> tuple[int, dict[str, Any]]:
    done = wmx_here(*args, "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def wmx_in_terminal(*args: object, env: Optional[dict[str, str]] = None,
                    timeout: float = 120) -> tuple[int, str]:
    """Run under a pseudo-terminal (POSIX only): what a person at a terminal sees, ANSI codes
    removed."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "wmx", *map(str, args)], stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "COLUMNS": "140", "TERM": "xterm", **(env or {})}, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=timeout)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.returncode, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
