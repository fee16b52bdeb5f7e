"""Helpers for HTTP tests: repositories on disk and real wmx servers on 127.0.0.1 port 0.

Kept out of conftest.py (owned by the engine tests) and imported explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import requests

from wmx.repository.setup import initialise
from wmx.server.run import ServerThread

ADMIN = "tester"
"""Administrator of every test repository (holds Manage Replication)."""
EDITOR = "editor1"
"""A known user without replication or administrator privileges (``quick`` config)."""


def make_repository(folder: Path, name: str = "Parent", config: str = "quick", *,
                    job_id_start: int = 1) -> Path:
    path = folder / f"{name.lower()}.wmxdb"
    initialise(path, name=name, config=config, job_id_start=job_id_start, admin=ADMIN).close()
    return path


@contextlib.contextmanager
def running_server(path: Path, token: Optional[str] = None, **options: Any
                   ) -> Iterator[ServerThread]:
    with ServerThread(path, token=token, **options) as server:
        yield server


class Client:
    """Raw HTTP against one service, the way an Esri client talks to it (``f=json``)."""

    def __init__(self, url: str, token: Optional[str] = None) -> None:
        self.url = url
        self.token = token
        self.session = requests.Session()

    def request(self, method: str, path: str = "", *, files: Any = None, headers: Any = None,
                data: Any = None, **params: Any) -> requests.Response:
        params.setdefault("f", "json")
        if self.token is not None:
            params.setdefault("token", self.token)
        url = f"{self.url}/{path}" if path else self.url
        if method == "GET":
            return self.session.get(url, params=params, headers=headers, timeout=10)
        if data is not None:
            return self.session.post(url, params=params, data=data, headers=headers,
                                     timeout=10)
        return self.session.post(url, data=params, files=files, headers=headers, timeout=10)

    def get(self, path: str = "", **params: Any) -> Any:
        return self.request("GET", path, **params).json()

    def post(self, path: str = "", **params: Any) -> Any:
        return self.request("POST", path, **params).json()


def error_code(answer: Any) -> Optional[int]:
    """The Esri envelope's code, or None for a successful answer."""
    return answer["error"]["code"] if isinstance(answer, dict) and "error" in answer else None
