"""Replicate (Esri's Create Replica): make every child an exact copy of the parent.

Unlike Esri, which deleted a child's configuration before importing the parent's, the copy is
staged beside the child's live data and swapped in atomically, so an interrupted replicate
leaves the child exactly as it was. What a child holds that its parent never received is kept
first (consolidated, or saved to an exchange file). Each child keeps (or receives) its own
job-id block and is registered on the parent with checkpoints that make the first sync send
only what changed after the copy began.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Optional

from wmx import progress
from wmx.engine.cluster import Cluster, Opener
from wmx.engine.exchange import export_repository
from wmx.engine.identity import Contact, contact_children
from wmx.engine.outcome import FAILED, ChildOutcome, ChildTarget, RunOutcome
from wmx.engine.rejoin import rejoin
from wmx.engine.synchronize import consolidate, open_session
from wmx.model.changes import ROW_FIELDS, ConflictPolicy
from wmx.model.locations import shown_location
from wmx.model.records import JOB_KINDS
from wmx.repository.base import (
    NodeRecord,
    ReadsOverNetwork,
    ReportsWarnings,
    Repository,
    RepositoryError,
    SnapshotPage,
)
from wmx.state import saved_folder

log = logging.getLogger("wmx.engine")

DEFAULT_PAGE_SIZE = 5000
READ_AHEAD_PAGES = 1
"""Snapshot pages read from the parent ahead of the page being loaded into the child."""


Rescue = Callable[[str], Path]
"""Where the content of a child that is no replica of this parent is saved before a
replicate replaces it, for a child location (injected: the engine knows no backend)."""


def replicate(parent: Repository, targets: list[ChildTarget], open_child: Opener, *,
              page_size: int = DEFAULT_PAGE_SIZE, parent_location: str = "",
              rescue: Optional[Rescue] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST) -> RunOutcome:
    """Replace every connected child with a copy of the parent; export for the others.

    Nothing a child holds is destroyed without a way back: a replica's changes the parent
    never received are consolidated first (with ``policy`` for conflicts); the content of a
    repository that is no replica of this parent is saved to an exchange file in the folder
    ``rescue`` names for it (default: the state folder, ``wmx.state.saved_folder``)."""
    cluster = Cluster(parent, location=parent_location)
    started = datetime.now(timezone.utc)
    outcome = RunOutcome(parent_name=cluster.info.name, started_at=started)
    with contact_children(parent, cluster.info, targets, open_child,
                          replicating=True) as contacts:
        rejoin(cluster, contacts.contacts, page_size=page_size)
        cluster.ensure_parent_node()
        children = [ChildOutcome(contact.target) for contact in contacts]
        outcome.children.extend(children)
        # Everything the children hold that the parent lacks is kept before any child is
        # replaced, so every copy includes what the others consolidated.
        for contact, child in zip(contacts, children):
            if contact.target.connected:
                _attempt(child, partial(_keep, cluster, contact, child, rescue, policy))
        for contact, child in zip(contacts, children):
            if child.status == FAILED:
                continue
            if contact.target.connected:
                _attempt(child, partial(_replicate_child, cluster, contact, child, page_size,
                                        started))
            else:
                _attempt(child, partial(_export_for_disconnected_child, cluster,
                                        contact.target, child, started))
    return outcome


def _attempt(child: ChildOutcome, step: Callable[[], None]) -> None:
    """Run one child's step; its failure fails that child only."""
    try:
        step()
    except (RepositoryError, OSError) as exc:
        log.warning("replicate to %s failed: %s", child.target.name, exc)
        child.fail(exc)


def _keep(cluster: Cluster, contact: Contact, child: ChildOutcome, rescue: Optional[Rescue],
          policy: ConflictPolicy) -> None:
    """Keep what the child holds that its parent never received (SPEC §3): a replica's
    changes are consolidated into the parent; any other content is saved to a file."""
    if contact.error is not None:
        raise contact.error
    assert contact.repository is not None and contact.info is not None
    if contact.copy_of_parent:
        _keep_content(contact.repository, contact.target, child, rescue,
                      "is a copy of the parent")
    elif cluster.is_replica(contact.info):
        consolidate(cluster, open_session(cluster, contact.repository, contact.info, child),
                    policy)
    else:
        _keep_content(contact.repository, contact.target, child, rescue,
                      f"is not a replica of {cluster.info.name}")


def _replicate_child(cluster: Cluster, contact: Contact, child: ChildOutcome, page_size: int,
                     started: datetime) -> None:
    assert contact.repository is not None and contact.info is not None
    repository, current, target = contact.repository, contact.info, contact.target
    known = None if contact.copy_of_parent else cluster.nodes.get(current.node_id)
    # A byte copy of the parent file becomes a node of its own.
    new_node_id = str(uuid.uuid4()) if contact.copy_of_parent else None
    block = known.id_block_start if known and not known.is_parent else \
        cluster.allocate_block()
    load_id = repository.begin_load()
    try:
        resume_from = cluster.parent.info().seq
        loaded = 0
        with _snapshot_pages(cluster.parent, page_size) as pages:
            for page in progress.track(pages, f"replicate {target.name}",
                                       total=progress.size_of(cluster.parent),
                                       size=lambda page: len(page.rows)):
                if page.rows:
                    repository.load_rows(load_id, page.rows)
                    loaded += len(page.rows)
                log.info("replicate %s: %d rows copied", target.name, loaded)
        info = repository.commit_load(load_id, parent_node_id=cluster.parent_id,
                                      id_block_start=block, new_node_id=new_node_id)
        if isinstance(repository, ReportsWarnings):
            child.pushed.warnings.extend(repository.take_warnings())
    except BaseException:
        _abort_quietly(repository, load_id)
        raise
    if current.name.lower() != target.name.lower():
        log.info("child %s is named %s in its repository", target.name, current.name)
    cluster.save(NodeRecord(node_id=info.node_id, name=target.name,
                            url=shown_location(target.url),
                            id_block_start=block, incarnation=info.incarnation,
                            pull_seq=info.seq, push_seq=resume_from), last_sync=started)
    child.loaded_rows = loaded
    child.last_sync_time = started


def _keep_content(repository: Repository, target: ChildTarget, child: ChildOutcome,
                  rescue: Optional[Rescue], why: str) -> None:
    """Save what a child that is no replica of this parent holds before it is replaced.

    A repository that holds no job (what ``wmx init`` creates: configuration only) has
    nothing of its own to lose and is replaced as it is."""
    if not _holds_jobs(repository):
        return
    folder = rescue(target.url) if rescue is not None else saved_folder()
    path, count = export_repository(repository, folder)
    child.saved_file = str(path)
    child.notice = (f"{target.name} {why}: the {count} element(s) it held were saved to "
                    f"{path} before it was replaced (ImportJobData brings them back)")
    log.warning("%s", child.notice)


def _holds_jobs(repository: Repository) -> bool:
    """Whether any live job or job record is in the repository (stops at the first)."""
    kind, deleted = ROW_FIELDS.index("kind"), ROW_FIELDS.index("deleted")
    return any(row[kind] in JOB_KINDS and not row[deleted]
               for page in _pages_in_line(repository, DEFAULT_PAGE_SIZE) for row in page.rows)


@contextlib.contextmanager
def _snapshot_pages(parent: Repository, page_size: int) -> Iterator[Iterable[SnapshotPage]]:
    """The parent's snapshot, page by page: read ahead in a thread if its reads wait on the
    network, else in line (two threads of Python and SQLite work only take turns at the GIL:
    read ahead, a 100,000-row copy took a fifth longer)."""
    if isinstance(parent, ReadsOverNetwork) and parent.reads_over_network():
        with _SnapshotReader(parent, page_size) as pages:
            yield pages
    else:
        yield _pages_in_line(parent, page_size)


def _pages_in_line(parent: Repository, page_size: int) -> Iterator[SnapshotPage]:
    cursor = 0
    while True:
        page = parent.snapshot(cursor, page_size)
        yield page
        if not page.more:
            return
        cursor = page.cursor


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
        try:
            for page in _pages_in_line(self._parent, self._page_size):
                if self._stop.is_set():
                    return
                self._put(page)
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
    cluster.save(NodeRecord(node_id=placeholder, name=target.name,
                            url=shown_location(target.url),
                            is_connected=False, id_block_start=block), last_sync=started)
    child.export_file, child.loaded_rows, child.last_sync_time = str(path), count, started


def _abort_quietly(repository: Repository, load_id: str) -> None:
    """Drop a staged copy after a failure; if even that fails, the next load replaces it."""
    try:
        repository.abort_load(load_id)
    except RepositoryError as exc:
        log.debug("could not abort load %s: %s", load_id, exc)
