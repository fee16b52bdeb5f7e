"""Opening a location never changes a file that is not a wmx repository (SPEC §2.3, last part).

Issue 8 item 9 and issue 11 point 6: ``wmx status random.sqlite`` switched a foreign SQLite file
to WAL mode, an empty file became a 4 KB database, a GeoPackage would have been changed the
same way; a read-only file or folder said "not a wmx repository", a folder "does not exist".
Now the file is recognised as ours by reading only (its header mark, or for files made before
the mark our tables through a read-only connection) before any connection could change it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN
from wmx import arcpy
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.errors import ExecuteError
from wmx.repository import RepositoryNotFound, RepositoryUnavailable, open_repository
from wmx.repository.embedded import APPLICATION_ID, EmbeddedRepository, RepositoryReadOnly

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"


def _sqlite(path: Path, *statements: str) -> Path:
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return path


FOREIGN = {
    "a plain SQLite database": lambda p: _sqlite(
        p, "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"),
    "an empty file": lambda p: (p.write_bytes(b""), p)[1],
    "a GeoPackage": lambda p: _sqlite(
        p, f"PRAGMA application_id={GPKG_APPLICATION_ID}",
        "CREATE TABLE gpkg_contents (table_name TEXT)",
        "CREATE TABLE meta (key TEXT, value TEXT)",
        "INSERT INTO meta VALUES ('schema_version', '1')"),
    "a SQLite database with a table named like ours": lambda p: _sqlite(
        p, "CREATE TABLE meta (key TEXT, value TEXT)",
        "INSERT INTO meta VALUES ('schema_version', '1')"),
    "a text file": lambda p: (p.write_text("name,value\nx,1\n" * 50), p)[1],
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


@pytest.fixture(params=list(FOREIGN), ids=list(FOREIGN))
def foreign(request, tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return FOREIGN[request.param](folder / "random.sqlite")


def test_opening_a_foreign_file_refuses_it_and_leaves_it_byte_for_byte_as_it_was(foreign):
    before = _snapshot(foreign.parent)
    with pytest.raises(RepositoryNotFound, match="is not a wmx repository"):
        open_repository(str(foreign))
    with pytest.raises(RepositoryNotFound, match="is not a wmx repository"):
        open_repository(f"sqlite:///{foreign}")
    assert _snapshot(foreign.parent) == before  # no journal-mode switch, no -wal/-shm left


def test_wmx_status_on_a_foreign_file_fails_and_changes_nothing(foreign):
    before = _snapshot(foreign.parent)
    run = subprocess.run([sys.executable, "-m", "wmx", "status", str(foreign)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "not a wmx repository" in run.stderr
    assert _snapshot(foreign.parent) == before


def test_a_tool_given_a_foreign_parent_fails_validation_and_changes_nothing(foreign, tmp_path):
    before = _snapshot(foreign.parent)
    with pytest.raises(ExecuteError):
        arcpy.ExportJobData_wmx(str(tmp_path), str(foreign))
    assert _snapshot(foreign.parent) == before


def test_a_folder_given_as_a_repository_is_named_as_a_folder(tmp_path: Path):
    with pytest.raises(RepositoryNotFound, match="is a folder, not a repository file"):
        open_repository(str(tmp_path))


def test_a_missing_file_still_does_not_exist_and_none_is_created(tmp_path: Path):
    with pytest.raises(RepositoryNotFound, match="does not exist"):
        open_repository(str(tmp_path / "missing.wmxdb"))
    assert list(tmp_path.iterdir()) == []


def test_new_repositories_carry_the_wmx_mark_in_their_header(cluster):
    header = cluster.parent_path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID


def test_a_repository_made_before_the_mark_still_opens(cluster):
    db = sqlite3.connect(cluster.parent_path)
    db.execute("PRAGMA application_id=0")
    db.close()
    with EmbeddedRepository(cluster.parent_path) as parent:
        assert parent.info().name == "Parent"


# --- read-only files and folders --------------------------------------------------------------

def _chattr(flag: str, path: Path) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Makes a file or folder read-only for this process, and undoes it afterwards. Root
    ignores permission bits, so as root the immutable attribute is used (skipped where the
    file system has none)."""
    undo: list[Callable[[], object]] = []

    def make(path: Path) -> None:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            if not _chattr("+i", path):
                pytest.skip("running as root on a file system without chattr +i")
            undo.append(lambda: _chattr("-i", path))
        else:
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            undo.append(lambda: path.chmod(mode))
        if os.access(path, os.W_OK):
            pytest.skip("cannot make a file read-only here")

    yield make
    for step in reversed(undo):
        step()


def test_a_read_only_repository_file_says_read_only_not_foreign(cluster, make_read_only):
    before = cluster.parent_path.read_bytes()
    make_read_only(cluster.parent_path)
    with pytest.raises(RepositoryReadOnly, match="is read-only") as refused:
        open_repository(str(cluster.parent_path))
    assert isinstance(refused.value, RepositoryUnavailable)
    assert "not a wmx repository" not in str(refused.value)
    assert cluster.parent_path.read_bytes() == before


def test_a_repository_in_a_read_only_folder_says_the_folder_is_read_only(tmp_path,
                                                                         make_read_only):
    folder = tmp_path / "readonly"
    folder.mkdir()
    EmbeddedRepository.create(folder / "r.wmxdb", name="R").close()
    make_read_only(folder)
    with pytest.raises(RepositoryReadOnly, match=r"folder .* is read-only"):
        open_repository(str(folder / "r.wmxdb"))


def test_creating_a_repository_in_a_read_only_folder_is_a_clear_error(tmp_path,
                                                                       make_read_only):
    folder = tmp_path / "readonly"
    folder.mkdir()
    make_read_only(folder)
    with pytest.raises(RepositoryUnavailable, match="Cannot create"):
        EmbeddedRepository.create(folder / "new.wmxdb", name="New")
    assert list(folder.iterdir()) == []


def test_a_sync_whose_parent_is_read_only_says_read_only(cluster, make_read_only):
    with cluster.parent() as parent:
        parent.create_job(1, user=ADMIN)
    make_read_only(cluster.parent_path)
    rows = ";".join(f"{name} true {path} #" for name, path in cluster.child_paths.items())
    with pytest.raises(ExecuteError, match="read-only") as failed:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", rows)
    assert "does not exist" not in str(failed.value)


def test_replicating_or_synchronizing_into_a_foreign_file_fails_that_child_and_changes_nothing(
        cluster, tmp_path):
    (tmp_path / "stranger").mkdir()
    foreign = FOREIGN["a GeoPackage"](tmp_path / "stranger" / "parcels.gpkg")
    before = _snapshot(foreign.parent)
    targets = [ChildTarget("Stranger", str(foreign)), *cluster.targets(["Child1"])]
    with cluster.parent() as parent:
        replicated = replicate(parent, targets, open_repository)
        synchronized = synchronize(parent, targets, open_repository)
    for outcome in (replicated, synchronized):
        stranger, child = outcome.children
        assert stranger.error and "not a wmx repository" in stranger.error
        assert not child.error
    assert _snapshot(foreign.parent) == before
