"""The tools name the repository that failed (SPEC §2.1): a failure met inside a transaction
that a guarded repository opened is that repository's too, and a fail-fast repository that
failed inside one still ends it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.http_helpers import make_repository
from wmx.repository.base import NodeRecord, RepositoryUnavailable
from wmx.repository.embedded import EmbeddedRepository
from wmx.store.sql import SqlStore, SqlTransaction
from wmx.tools.failures import PARENT, Node, NodeFailure, guard

NODE = NodeRecord(node_id="c1", name="Ohio", url="http://ohio/WMServer")


def _parent(tmp_path: Path) -> tuple[Path, Node]:
    path = make_repository(tmp_path)
    return path, Node(PARENT, "Parent", str(path))


def test_a_commit_that_fails_is_the_failure_of_the_repository_that_opened_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, node = _parent(tmp_path)

    def disk_full(self: SqlTransaction, closing: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with EmbeddedRepository(path) as store:
        guarded = guard(store, node)
        monkeypatch.setattr(SqlTransaction, "commit", disk_full)
        with pytest.raises(NodeFailure) as caught, \
                guarded.transaction():  # type: ignore[attr-defined]
            guarded.save_node(NODE)
        assert caught.value.failure.node == node
        monkeypatch.undo()
        assert store.nodes() == []


def test_a_fail_fast_repository_that_failed_inside_a_transaction_still_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, node = _parent(tmp_path)

    def unavailable(self: SqlStore, record: NodeRecord) -> None:
        raise RepositoryUnavailable("the disk went away")

    with EmbeddedRepository(path) as store:
        guarded = guard(store, node, fail_fast=True)
        monkeypatch.setattr(SqlStore, "save_node", unavailable)
        with pytest.raises(NodeFailure), \
                guarded.transaction():  # type: ignore[attr-defined]
            store.set_node_local("probe", "written in the failed transaction")
            guarded.save_node(NODE)
        with pytest.raises(NodeFailure):  # failed fast from now on
            guarded.info()
        other = sqlite3.connect(path, timeout=0.5)
        try:
            other.execute("BEGIN IMMEDIATE")  # no write lock left behind
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert store._meta("probe") is None
