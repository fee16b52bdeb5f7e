"""Synchronize: children's changes consolidated at the parent, then the parent's changes
(its own and the consolidated ones) pushed to every child.

Order of operations per child, each step restartable:
1. pull — read the child's feed from the pull checkpoint (only versions the child wrote
   itself), apply at the parent with conflict detection, then move the checkpoint;
2. push — read the parent's feed from the push checkpoint (everything not written by that
   child), apply at the child, then move the checkpoint. A page touching an element the
   child's users changed since step 1 is refused by the child; the engine consolidates that
   change first (so a conflict is detected and logged at the parent) and pushes again.
A checkpoint moves only after the batch it covers is committed, so a crash at any point is
repaired by running again; versions are applied idempotently, so re-sending costs nothing.
Each phase reads its feed as far as the log head it saw when it began: what is written while
the run goes on travels in the next run.
A failing child is reported and skipped; the others go on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Optional

import attrs

from wmx import progress
from wmx.engine.cluster import Cluster, Opener
from wmx.engine.feed import change_pages
from wmx.engine.outcome import SKIPPED, ChildOutcome, ChildTarget, RunOutcome
from wmx.model.changes import Change, ConflictPolicy
from wmx.repository.base import NodeInfo, NodeRecord, Repository, RepositoryError

log = logging.getLogger("wmx.engine")

DEFAULT_PAGE_SIZE = 2000
PUSH_ATTEMPTS = 4
"""Pushes to one child that its users' edits may refuse (see ``_push_pages``); the last
attempt is applied regardless, so a child edited without pause still completes."""


@attrs.define
class _Session:
    """A child taking part in this run, between its pull and its push."""

    outcome: ChildOutcome
    repository: Repository
    info: NodeInfo
    node: NodeRecord


def synchronize(parent: Repository, targets: list[ChildTarget], open_child: Opener, *,
                policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
                page_size: int = DEFAULT_PAGE_SIZE, parent_location: str = "") -> RunOutcome:
    cluster = Cluster(parent, location=parent_location)
    started = datetime.now(timezone.utc)
    outcome = RunOutcome(parent_name=cluster.info.name, started_at=started, dry_run=dry_run)
    pending: dict[str, Change] = {}
    sessions: list[_Session] = []
    try:
        for target in targets:
            child = ChildOutcome(target)
            outcome.children.append(child)
            if not target.connected:
                child.status, child.last_sync_time = SKIPPED, target.last_sync_time
                continue
            session = _pull(cluster, target, open_child, child, policy, dry_run, page_size,
                            pending)
            if session is not None:
                sessions.append(session)
        for session in sessions:
            _push(cluster, session, policy, dry_run, page_size, pending, started)
    finally:
        for session in sessions:
            session.repository.close()
    return outcome


def _pull(cluster: Cluster, target: ChildTarget, open_child: Opener, child: ChildOutcome,
          policy: ConflictPolicy, dry_run: bool, page_size: int,
          pending: dict[str, Change]) -> Optional[_Session]:
    repository: Optional[Repository] = None
    try:
        repository = open_child(target.url)
        info = repository.info()
        session = _Session(child, repository, info, cluster.registered(info, target))
        _consolidate(cluster, session, policy, dry_run, page_size, pending,
                     since_time=target.last_sync_time, until_seq=info.seq)
        log.info("pulled %d change(s) from %s", child.pulled.writes, target.name)
        return session
    except RepositoryError as exc:
        log.warning("sync with %s failed while pulling: %s", target.name, exc)
        child.fail(str(exc))
        if repository is not None:
            repository.close()
        return None


def _consolidate(cluster: Cluster, session: _Session, policy: ConflictPolicy, dry_run: bool,
                 page_size: int, pending: dict[str, Change], *,
                 since_time: Optional[datetime], until_seq: int) -> None:
    """Apply the child's own versions at the parent, from the pull checkpoint on, with
    conflict detection; the checkpoint follows each committed page."""
    child, node, info = session.outcome, session.node, session.info
    pages = change_pages(session.repository, node.pull_seq, page_size=page_size,
                         origin=info.node_id, since_time=since_time, until_seq=until_seq)
    for page in progress.track_log(pages, f"pull {child.target.name}", start=node.pull_seq,
                                   end=until_seq):
        if page.changes:
            report = cluster.parent.apply(
                page.changes, parent_node=cluster.parent_id, source_node=info.node_id,
                detect_since=node.push_seq, policy=policy, dry_run=dry_run,
                overlay=list(pending.values()) if dry_run else ())
            child.pulled.add(report)
            pending.update((c.guid, c) for c in report.written)
        if not dry_run and page.last_seq != node.pull_seq:
            node.pull_seq = page.last_seq
            cluster.save(node)


def _push(cluster: Cluster, session: _Session, policy: ConflictPolicy, dry_run: bool,
          page_size: int, pending: dict[str, Change], started: datetime) -> None:
    child, node, target = session.outcome, session.node, session.outcome.target
    try:
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            guarded = not dry_run and attempt < PUSH_ATTEMPTS
            since_time = target.last_sync_time if attempt == 1 else None
            if _push_pages(cluster, session, dry_run, page_size, pending, guarded, since_time):
                break
            # The child's users changed an element being pushed: consolidate their version
            # first, so that the parent sees the conflict, logs the loser and applies the policy.
            _consolidate(cluster, session, policy, dry_run, page_size, pending, since_time=None,
                         until_seq=session.repository.info().seq)
        if not dry_run:
            cluster.save(node, last_sync=started)
        child.last_sync_time = target.last_sync_time if dry_run else started
        log.info("pushed %d change(s) to %s", child.pushed.writes, target.name)
    except RepositoryError as exc:
        log.warning("sync with %s failed while pushing: %s", target.name, exc)
        child.fail(str(exc))


def _push_pages(cluster: Cluster, session: _Session, dry_run: bool, page_size: int,
                pending: dict[str, Change], guarded: bool,
                since_time: Optional[datetime]) -> bool:
    """Push the parent's versions from the push checkpoint on; ``guarded``: a page is refused
    if the child changed one of its elements since its last consolidation (then False)."""
    child, node = session.outcome, session.node
    head = cluster.parent.info().seq
    pages = change_pages(cluster.parent, node.push_seq, page_size=page_size,
                         exclude_origin=session.info.node_id, since_time=since_time,
                         until_seq=head)
    for page in progress.track_log(pages, f"push {child.target.name}", start=node.push_seq,
                                   end=head):
        changes = page.changes
        if dry_run and not page.more:
            changes = _with_pending(changes, pending, session.info.node_id)
        if changes:
            report = session.repository.apply(
                changes, parent_node=cluster.parent_id, dry_run=dry_run,
                refuse_if_changed_since=node.pull_seq if guarded else None)
            if report.refused:
                return False
            child.pushed.add(report)
            if report.seq_before == node.pull_seq:
                # Nothing was written at the child since we read it: skip our own echo.
                node.pull_seq = report.seq_after
        node.push_seq = page.last_seq
        if not dry_run:
            cluster.save(node)
    return True


def _with_pending(changes: list[Change], pending: dict[str, Change],
                  child_node: str) -> list[Change]:
    """What a real run's feed would end with: the versions phase 1 would have written."""
    extra = {guid: c for guid, c in pending.items() if c.origin != child_node}
    return [c for c in changes if c.guid not in extra] + list(extra.values())
