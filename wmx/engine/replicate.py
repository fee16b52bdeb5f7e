"""Replicate (Esri's Create Replica): make every child an exact copy of the parent.

Unlike Esri, which deleted a child's configuration before importing the parent's, the copy is
staged beside the child's live data and swapped in atomically, so an interrupted replicate
leaves the child exactly as it was. Each child keeps (or receives) its own job-id block and is
registered on the parent with checkpoints that make the first sync send only what changed
after the copy began.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Optional

from wmx import progress
from wmx.engine.cluster import Cluster, Opener, opened
from wmx.engine.exchange import export_repository
from wmx.engine.outcome import ChildOutcome, ChildTarget, RunOutcome
from wmx.repository.base import NodeRecord, Repository, RepositoryError, SnapshotPage

log = logging.getLogger("wmx.engine")

DEFAULT_PAGE_SIZE = 5000
READ_AHEAD_PAGES = 1
"""Snapshot pages read from the parent ahead of the page being loaded into the child."""


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
            child.fail(exc)
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
            loaded = 0
            with _SnapshotReader(cluster.parent, page_size) as pages:
                for page in progress.track(pages, f"replicate {target.name}",
                                           total=progress.size_of(cluster.parent),
                                           size=lambda page: len(page.rows)):
                    if page.rows:
                        repository.load_rows(load_id, page.rows)
                        loaded += len(page.rows)
                    log.info("replicate %s: %d rows copied", target.name, loaded)
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


class _SnapshotReader:
    """The parent's snapshot, page by page, read ahead by a background thread so that reading
    the parent overlaps writing the child (SQLite and the network release the GIL).

    At most :data:`READ_AHEAD_PAGES` pages wait in the queue, so memory stays bounded by a few
    pages; pages arrive in cursor order; a read error is raised in the consumer. Leaving the
    ``with`` block (normally or by an exception) stops the thread and waits for it, so the
    parent is never read after the caller has moved on.
    """

    def __init__(self, parent: Repository, page_size: int) -> None:
        self._parent = parent
        self._page_size = page_size
        self._pages: queue.Queue = queue.Queue(maxsize=READ_AHEAD_PAGES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="wmx-snapshot-reader",
                                        daemon=True)

    def __enter__(self) -> _SnapshotReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[SnapshotPage]:
        while True:
            item = self._pages.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if not item.more:
                return

    def _read(self) -> None:
        cursor = 0
        try:
            while not self._stop.is_set():
                page = self._parent.snapshot(cursor, self._page_size)
                self._put(page)
                if not page.more:
                    return
                cursor = page.cursor
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return
            except queue.Full:
                continue


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
