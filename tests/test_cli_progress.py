"""Long work on the command line: progress bars on a terminal only, tool messages as they
happen, Ctrl-C as one line and exit code 130 (issue 11, point 4)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.cli_helpers import wmx, wmx_in_terminal
from tests.conftest import ADMIN, make_cluster
from wmx import progress

posix_terminal = pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals and SIGINT "
                                                            "delivery are POSIX-only")


def _table(cluster) -> str:
    return ";".join(f"{t.name} true {t.url}" for t in cluster.targets())


def _cluster_with_work(tmp_path):
    cluster = make_cluster(tmp_path, children=2, replicated=False)
    with cluster.parent() as parent:
        for _ in range(40):
            parent.create_job(1, user=ADMIN)
    return cluster


@posix_terminal
def test_replicate_and_sync_show_bars_with_total_rate_and_eta_on_a_terminal(tmp_path):
    cluster = _cluster_with_work(tmp_path)
    code, screen = wmx_in_terminal("replicate", cluster.parent_path, "Parent", _table(cluster))
    assert code == 0, screen
    with cluster.parent() as parent:
        rows = parent.element_count()
    assert "replicate Child1" in screen and f"{rows:,}/{rows:,} rows" in screen
    assert "rows/s" in screen and "ETA" in screen and "100%" in screen
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)
    code, screen = wmx_in_terminal("sync", cluster.parent_path, "Parent", _table(cluster))
    assert code == 0, screen
    for bar in ("pull Child1", "push Child1", "pull Child2", "push Child2"):
        assert bar in screen
    assert "changes/s" in screen
    assert "Succeeded at" in screen  # the tool's messages still reach the terminal


@posix_terminal
def test_no_bars_with_quiet_on_a_terminal(tmp_path):
    cluster = _cluster_with_work(tmp_path)
    code, screen = wmx_in_terminal("replicate", cluster.parent_path, "Parent", _table(cluster),
                                   "-q")
    assert code == 0 and "replicate Child1" not in screen and "rows/s" not in screen


def test_no_bars_and_no_escape_codes_when_piped(tmp_path):
    cluster = _cluster_with_work(tmp_path)
    done = wmx("replicate", cluster.parent_path, "Parent", _table(cluster))
    assert done.returncode == 0
    for stream in (done.stdout, done.stderr):
        assert "\x1b[" not in stream and "rows/s" not in stream
    assert done.stdout.startswith("Start Time: ")


@pytest.fixture
def silent_service():
    """A WMServer URL whose server accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        yield f"http://127.0.0.1:{port}/arcgis/rest/services/Slow/WMServer"


@posix_terminal
def test_messages_appear_as_they_happen_and_ctrl_c_is_one_line_and_exit_130(tmp_path,
                                                                           silent_service):
    cluster = make_cluster(tmp_path, children=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "wmx", "sync", str(cluster.parent_path), "Parent",
         f"Slow true {silent_service}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("Start Time: ")
        assert process.poll() is None  # printed while the tool is still at work
        process.send_signal(signal.SIGINT)
        _output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors
    assert errors.strip() == "wmx: interrupted; what was already applied is kept and " \
        "checkpointed, so running the same command again completes it without sending " \
        "anything twice."


class _Recorder:
    """A renderer that keeps what it was told; ``broken`` makes every call raise."""

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.tasks: list[dict] = []

    def start(self, description, total, unit):
        if self.broken:
            raise RuntimeError("terminal gone")
        task = {"description": description, "total": total, "unit": unit, "done": 0,
                "ended": False}
        self.tasks.append(task)
        recorder = self

        class Task:
            def advance(self, amount):
                if recorder.broken:
                    raise RuntimeError("terminal gone")
                task["done"] += amount

            def end(self):
                task["ended"] = True
        return Task()


def test_the_engine_reports_log_positions_read_so_a_sync_bar_ends_at_the_head(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    with cluster.child("Child1") as child:
        for _ in range(3):
            child.create_job(1, user=ADMIN)
    recorder = _Recorder()
    with progress.rendering(recorder):
        cluster.sync()
    pull = next(t for t in recorder.tasks if t["description"] == "pull Child1")
    push = next(t for t in recorder.tasks if t["description"] == "push Child1")
    assert pull["done"] == pull["total"] > 0 and pull["unit"] == "changes"
    assert push["done"] == push["total"] and all(t["ended"] for t in recorder.tasks)


def test_a_broken_renderer_never_stops_the_work_it_shows(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    with progress.rendering(_Recorder(broken=True)):
        outcome = cluster.replicate()
    assert [child.status for child in outcome.children] == ["OK"]
    cluster.assert_converged()
