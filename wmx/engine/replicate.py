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
from typing import Optional

from wmx.engine.cluster import Cluster, Opener, opened
from wmx.engine.exchange import export_repository
from wmx.engine.outcome import ChildOutcome, ChildTarget, RunOutcome
from wmx.repository.base import NodeRecord, Repository, RepositoryError

log = logging.getLogger("wmx.engine")

DEFAULT_PAGE_SIZE = 5000


def replicate(parent: Repository, targets: list[ChildTarget], open_child: Opener, *,
              page_size: int = DEFAULT_PAGE_SIZE, parent_location: str = "") -> RunOutcome:
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
            else:
                _export_for_disconnected_child(cluster, target, child, started)
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


def _export_for_disconnected_child(cluster: Cluster, target: ChildTarget, child: ChildOutcome,
                                   started: datetime) -> None:
    """Esri's disconnected mode: the URL column is a folder that receives the parent's data,
    to be loaded at the child with ImportJobData (REPLACE). The child's id block is reserved
    now, under a placeholder node, so no other child can be given it."""
    placeholder = f"disconnected:{target.name.lower()}"
    known = cluster.nodes.get(placeholder)
    block = known.id_block_start if known else cluster.allocate_block()
    path, count = export_repository(cluster.parent, target.url, id_block_start=block)
    cluster.save(NodeRecord(node_id=placeholder, name=target.name, url=target.url,
                            is_connected=False, id_block_start=block), last_sync=started)
    child.export_file, child.loaded_rows, child.last_sync_time = str(path), count, started


def _abort_quietly(repository: Repository, load_id: str) -> None:
    """Drop a staged copy after a failure; if even that fails, the next load replaces it."""
    try:
        repository.abort_load(load_id)
    except RepositoryError as exc:
        log.debug("could not abort load %s: %s", load_id, exc)
