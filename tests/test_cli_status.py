"""``wmx status`` and ``wmx conflicts`` name nodes, show losing versions and restore one;
``wmx init`` where it cannot write says so (issue 11, points 6 and 7)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import wmx, wmx_here, wmx_here_json
from tests.conftest import ADMIN, make_cluster


def _cluster_with_a_conflict(tmp_path):
    """Job 1 edited at both children; Child2's later edit wins, Child1's is logged."""
    cluster = make_cluster(tmp_path, children=2)
    with cluster.parent() as parent:
        parent.create_job(1, user=ADMIN)
    cluster.sync()
    for name in ("Child1", "Child2"):
        with cluster.child(name) as child:
            child.update_job(1, user=ADMIN, description=f"{name} says")
    cluster.sync()
    return cluster


def test_status_names_every_node_and_the_parent_does_not_list_itself(tmp_path):
    cluster = _cluster_with_a_conflict(tmp_path)
    with cluster.parent() as parent, cluster.child("Child1") as child1:
        ids = [parent.info().node_id, child1.info().node_id]
    done = wmx("status", cluster.parent_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    nodes = [line for line in lines if line.startswith("  ") and "last sync" in line]
    assert [line.split()[0] for line in nodes] == ["Child1", "Child2"]
    assert "never" not in done.stdout
    assert "Parent       (none: this repository is the parent of its cluster)" in lines
    conflict = next(line for line in lines if "#1" in line)
    assert "kept Child2" in conflict and "from Child1" in conflict
    assert not any(node_id in conflict for node_id in ids)


def test_conflicts_lists_by_name_and_shows_the_losing_version(tmp_path):
    cluster = _cluster_with_a_conflict(tmp_path)
    listed = wmx_here("conflicts", cluster.parent_path)
    assert listed.returncode == 0
    assert "job 1" in listed.stdout and "kept Child2" in listed.stdout
    assert "--restore N" in listed.stdout
    shown = wmx_here("conflicts", cluster.parent_path, "--show", "1")
    assert shown.returncode == 0 and '"description": "Child1 says"' in shown.stdout
    code, report = wmx_here_json("conflicts", cluster.parent_path, "--show", "1")
    assert code == 0 and report["data"]["conflict"]["loser"] == "Child1"
    assert report["data"]["conflict"]["loser_body"]["description"] == "Child1 says"
    beyond = wmx_here("conflicts", cluster.parent_path, "--show", "9")
    assert beyond.returncode == 1 and "There is no conflict #9" in beyond.stderr


def test_restore_writes_the_losing_version_back_as_a_new_edit_that_replicates(tmp_path):
    cluster = _cluster_with_a_conflict(tmp_path)
    with cluster.parent() as parent:
        before = parent.info().seq
    done = wmx_here("conflicts", cluster.parent_path, "--restore", "1", "--user", "restorer")
    assert done.returncode == 0, done.stderr
    assert "description" in done.stdout and "restorer" in done.stdout
    with cluster.parent() as parent:
        assert parent.get_job(1).description == "Child1 says"
        assert parent.info().seq > before
    cluster.sync()
    with cluster.child("Child2") as child2:
        assert child2.get_job(1).description == "Child1 says"


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder nobody may create files in: read-only bits, or for root (whom those bits do
    not stop) a folder of the kernel's."""
    if os.name == "nt":
        pytest.skip("read-only bits do not stop file creation in a Windows folder")
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if sys.platform.startswith("linux"):
        return Path("/proc")
    pytest.skip("no folder that root cannot write to on this system")


def test_init_in_a_folder_it_cannot_write_is_one_error_line_and_exit_1(tmp_path):
    folder = _unwritable_folder(tmp_path)
    target = folder / "new.wmxdb"
    done = wmx("init", target, "--name", "New")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "sqlite3" not in done.stderr
    assert done.stderr.startswith("ERROR: Cannot create") and "not writable" in done.stderr
    assert not target.exists()


def test_init_below_a_file_says_the_file_is_not_a_folder(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    code, report = wmx_here_json("init", blocker / "new.wmxdb", "--name", "New")
    assert code == 1 and "is a file, not a folder" in report["error"]["message"]
    assert json.dumps(report)  # one JSON document, nothing else on stdout
