"""Replicate (Esri's Create Replica): make every child an exact copy of the parent.

Unlike Esri, which deleted a child's configuration before importing the parent's, the copy is
staged beside the child's live data and swapped in atomically, so an interrupted replicate
leaves the child exactly as it was. Each child keeps (or receives) its own job-id block and is
registered on the parent with checkpoints that make the first sync send only what changed
after the copy began.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Callable, Optional

from wmx.engine.cluster import Cluster, Opener, opened
from wmx.engine.outcome import ChildOutcome, ChildTarget, RunOutcome
from wmx.repository.base import NodeRecord, Repository, RepositoryError

log = logging.getLogger("wmx.engine")

Exporter = Callable[[Repository, ChildTarget], str]
"""Writes the parent's data for a disconnected child into ``target.url`` (a folder); returns
the file written."""

DEFAULT_PAGE_SIZE = 5000


def replicate(parent: Repository, targets: list[ChildTarget], open_child: Opener, *,
              exporter: Optional[Exporter] = None, page_size: int = DEFAULT_PAGE_SIZE,
              parent_location: str = "") -> RunOutcome:
    cluster = Cluster(parent, location=parent_location)
    started = datetime.now(timezone.utc)
    outcome = RunOutcome(parent_name=cluster.info.name, started_at=started)
    cluster.ensure_parent_node()
    for target in targets:
        child = ChildOutcome(target)
        outcome.children.append(child)
        try:
            if target.connected:
                _replicate_child(cluster, target, open_child, child, page_size, started)
            elif exporter is None:
                child.fail("Disconnected replication needs an export folder handler")
            else:
                child.export_file = exporter(parent, target)
                child.last_sync_time = started
        except (RepositoryError, OSError) as exc:
            log.warning("replicate to %s failed: %s", target.name, exc)
            child.fail(str(exc))
    return outcome


def _replicate_child(cluster: Cluster, target: ChildTarget, open_child: Opener,
                     child: ChildOutcome, page_size: int, started: datetime) -> None:
    with opened(open_child, target.url) as repository:
        current = repository.info()
        known = cluster.nodes.get(current.node_id)
        if current.node_id == cluster.parent_id:
            # A byte copy of the parent file: give the child an identity of its own.
            new_node_id: Optional[str] = str(uuid.uuid4())
            known = None
        else:
            new_node_id = None
        block = known.id_block_start if known and not known.is_parent else \
            cluster.allocate_block()
        load_id = repository.begin_load()
        try:
            resume_from = cluster.parent.info().seq
            cursor, loaded = 0, 0
            while True:
                page = cluster.parent.snapshot(cursor, page_size)
                if page.rows:
                    repository.load_rows(load_id, page.rows)
                    loaded += len(page.rows)
                cursor = page.cursor
                log.info("replicate %s: %d rows copied", target.name, loaded)
                if not page.more:
                    break
            info = repository.commit_load(load_id, parent_node_id=cluster.parent_id,
                                          id_block_start=block, new_node_id=new_node_id)
        except BaseException:
            _abort_quietly(repository, load_id)
            raise
        if current.name.lower() != target.name.lower():
            log.info("child %s is named %s in its repository", target.name, current.name)
        cluster.save(NodeRecord(node_id=info.node_id, name=target.name, url=target.url,
                                id_block_start=block, incarnation=info.incarnation,
                                pull_seq=info.seq, push_seq=resume_from), last_sync=started)
        child.loaded_rows = loaded
        child.last_sync_time = started


def _abort_quietly(repository: Repository, load_id: str) -> None:
    """Drop a staged copy after a failure; if even that fails, the next load replaces it."""
    try:
        repository.abort_load(load_id)
    except RepositoryError as exc:
        log.debug("could not abort load %s: %s", load_id, exc)
