"""Several ``wmx serve`` processes on one PostgreSQL repository (SPEC §2.7): writes through
either are atomic and reach every feed reader; every acknowledged write ends up everywhere once.

Two real server processes on 127.0.0.1 port 0, REST writers on both while syncs with an
embedded child run. Skipped without PostgreSQL; fails under ``WMX_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import postgres_helpers
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.repository import open_repository
from wmx.repository.setup import initialise

USER = "tester"
postgres_server = postgres_helpers.postgres_server
postgres_location = postgres_helpers.postgres_location
pytestmark = [pytest.mark.http, pytest.mark.slow]  # some 30 s on the loaded 2-core machine


def _served(location: str) -> Iterator[str]:
    """Start ``wmx serve LOCATION`` and yield its URL once it listens."""
    process = subprocess.Popen([sys.executable, "-m", "wmx", "serve", location],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://\S+", line)
        assert found, f"wmx serve did not start: {line}{process.stdout.read()[:2000]}"
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def two_servers(postgres_location: str) -> Iterator[tuple[str, str, str]]:
    initialise(postgres_location, name="Parent", config="quick", admin=USER).close()
    first, second = _served(postgres_location), _served(postgres_location)
    yield postgres_location, next(first), next(second)
    for server in (first, second):
        server.close()


def test_writes_through_two_servers_of_one_repository_reach_everywhere_once(
        two_servers: tuple[str, str, str], tmp_path: Path) -> None:
    location, first_url, second_url = two_servers
    child_path = tmp_path / "ohio.wmxdb"
    initialise(child_path, name="Ohio", job_id_start=5000, admin=USER).close()
    child = [ChildTarget("Ohio", str(child_path))]
    parent = open_repository(location)
    assert replicate(parent, child, open_repository).status_code == 0
    acknowledged: list[int] = []
    failures: list[str] = []

    def write(url: str) -> None:
        with requests.Session() as session:
            for _ in range(10):
                answer = session.post(f"{url}/jobs/create", data={
                    "f": "json", "user": USER, "jobTypeId": 1, "numJobs": 1}, timeout=30)
                body = answer.json()
                if "jobIds" in body:
                    acknowledged.extend(body["jobIds"])
                else:
                    failures.append(str(body))

    writers = [threading.Thread(target=write, args=(url,))
               for url in (first_url, second_url, first_url, second_url)]
    for thread in writers:
        thread.start()
    while any(thread.is_alive() for thread in writers):
        assert synchronize(parent, child, open_repository).status_code == 0
    for thread in writers:
        thread.join()
    assert synchronize(parent, child, open_repository).status_code == 0
    assert failures == []
    assert len(acknowledged) == len(set(acknowledged)) == 40
    assert set(acknowledged) <= set(parent.job_ids())
    for url in (first_url, second_url):
        listed = requests.get(f"{url}/jobs", params={"f": "json", "user": USER}, timeout=30)
        assert set(acknowledged) <= set(listed.json()["jobIds"])
    with open_repository(str(child_path)) as ohio:
        assert ohio.all_rows() == parent.all_rows()
    parent.close()
