"""Synchronize: children's changes consolidated at the parent, then the parent's changes
(its own and the consolidated ones) pushed to every child.

Order of operations per child, each step restartable:
1. pull — read the child's feed from the pull checkpoint (only versions the child wrote
   itself), apply at the parent with conflict detection, then move the checkpoint;
2. push — read the parent's feed from the push checkpoint (everything not written by that
   child), apply at the child, then move the checkpoint. A page touching an element the
   child's users changed since step 1 is refused by the child; the engine consolidates that
   change first (so a conflict is detected and logged at the parent) and pushes again.
A checkpoint is never saved before the batch it covers is committed (a local parent saves a
pull checkpoint in that batch's transaction; the last push checkpoint is saved with the end
of the child's sync), so a crash at any point is repaired by running again; versions are
applied idempotently, so re-sending costs nothing.
Each phase reads its feed as far as the log head it saw when it began: what is written while
the run goes on travels in the next run.
A failing child is reported and skipped; the others go on.

Before anything is written every child is opened once and told apart by identity
(``wmx.engine.identity``). A child whose incarnation disagrees with the parent's record of
it (one of the two was restored from a backup) recovers: both phases start from the
beginning of the logs and carry every origin, so nothing either side holds is skipped.
At the end of a child's sync its incarnation is renewed and recorded at the parent.
A node that rebuilt itself from its server first adopts the cluster's identities
(``wmx.engine.rejoin``), then recovers in the same way.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Optional

import attrs

from wmx import progress
from wmx.engine.cluster import Cluster, Opener
from wmx.engine.feed import change_pages
from wmx.engine.identity import Contact, contact_children
from wmx.engine.outcome import SKIPPED, ChildOutcome, ChildTarget, RunOutcome
from wmx.engine.rejoin import rejoin
from wmx.model.changes import Change, ConflictPolicy
from wmx.model.clock import stamp_from_datetime
from wmx.repository.base import (
    ApplyReport,
    NodeInfo,
    NodeRecord,
    ReportsWarnings,
    Repository,
    RepositoryError,
    WritesTogether,
)

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
    recovery: Optional[_Recovery] = None
    """Set when the child or the parent was restored since their last exchange."""
    checkpoints: tuple[int, int] = (0, 0)
    """The pair's checkpoints when the session began (pull, push)."""

    @property
    def exchanged(self) -> bool:
        """Whether this session moved anything: a copy of the child taken before it would
        now differ from the child (see ``must_recover``)."""
        return (self.recovery is not None or self.outcome.pulled.writes > 0
                or self.outcome.pushed.writes > 0
                or (self.node.pull_seq, self.node.push_seq) != self.checkpoints)


@attrs.frozen
class _Recovery:
    """What the parent knew of the pair before it had to start over (see ``must_recover``)."""

    push_seq: int
    """How far the child had received the parent's log, by the parent's (old) record."""
    last_sync: Optional[datetime]
    """When their last exchange began: the child's versions stamped later are new edits."""


@attrs.define
class _Run:
    """What one run carries from child to child."""

    policy: ConflictPolicy
    dry_run: bool
    page_size: int
    started: datetime
    pending: dict[str, Change] = attrs.Factory(dict)
    """Versions the pulls wrote (dry runs stand them in for unwritten batches)."""
    renumbered: dict[str, Change] = attrs.Factory(dict)
    """Versions the pulls gave a new id: every child gets them before anything else."""
    parent_restored: bool = False
    """A recovering child held versions the parent lacked: the parent was restored from a
    backup, so any child may lack versions of its own that only its siblings still hold."""


def synchronize(parent: Repository, targets: list[ChildTarget], open_child: Opener, *,
                policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
                page_size: int = DEFAULT_PAGE_SIZE, parent_location: str = "") -> RunOutcome:
    cluster = Cluster(parent, location=parent_location)
    run = _Run(policy, dry_run, page_size, datetime.now(timezone.utc))
    outcome = RunOutcome(parent_name=cluster.info.name, started_at=run.started, dry_run=dry_run)
    sessions: list[_Session] = []
    with contact_children(parent, cluster.info, targets, open_child,
                          replicating=False) as contacts:
        rejoined = rejoin(cluster, contacts.contacts, page_size=page_size)
        for contact in contacts:
            child = ChildOutcome(contact.target)
            outcome.children.append(child)
            if not contact.target.connected:
                child.status, child.last_sync_time = SKIPPED, contact.target.last_sync_time
                continue
            session = _pull(cluster, contact, child, run)
            if session is not None and session.info.node_id in rejoined:
                child.notice = rejoined[session.info.node_id]
            if session is not None:
                sessions.append(session)
        for session in sessions:
            _push(cluster, session, run)
    return outcome


def _pull(cluster: Cluster, contact: Contact, child: ChildOutcome, run: _Run
          ) -> Optional[_Session]:
    target = contact.target
    try:
        if contact.error is not None:
            raise contact.error
        assert contact.repository is not None and contact.info is not None
        session = open_session(cluster, contact.repository, contact.info, child)
        _consolidate(cluster, session, run, since_time=None if session.recovery else
                     target.last_sync_time, until_seq=session.info.seq)
        _collect_warnings(cluster.parent, child.pulled)
        log.info("pulled %d change(s) from %s", child.pulled.writes, target.name)
        return session
    except RepositoryError as exc:
        log.warning("sync with %s failed while pulling: %s", target.name, exc)
        child.fail(exc)
        return None


def open_session(cluster: Cluster, repository: Repository, info: NodeInfo,
                 child: ChildOutcome) -> _Session:
    """The child's session, checked against the parent's record of it (NotAReplica)."""
    before = cluster.nodes.get(info.node_id)
    previous = _Recovery(before.push_seq, before.last_sync) if before is not None else None
    node, recovering = cluster.registered(info, child.target)
    session = _Session(child, repository, info, node, previous if recovering else None,
                       (node.pull_seq, node.push_seq))
    if recovering:
        child.notice = (
            f"{child.target.name} or {cluster.info.name} was restored from a backup (or "
            "replaced by a copy) since they last synchronized: every change was exchanged "
            "again, both ways")
        log.warning("%s", child.notice)
    return session


def consolidate(cluster: Cluster, session: _Session, policy: ConflictPolicy, *,
                page_size: int = DEFAULT_PAGE_SIZE) -> None:
    """Bring everything the child changed since its last exchange into the parent (what a
    sync's pull does); a replicate calls it before it replaces a replica."""
    run = _Run(policy, False, page_size, datetime.now(timezone.utc))
    _consolidate(cluster, session, run, since_time=None, until_seq=session.info.seq)


def _consolidate(cluster: Cluster, session: _Session, run: _Run, *,
                 since_time: Optional[datetime], until_seq: int) -> None:
    """Apply the child's own versions at the parent, from the pull checkpoint on, with
    conflict detection; the checkpoint follows each committed page.

    A recovering pair reads every version the child holds, whatever its origin: what a
    restored parent lost comes back from its children."""
    child, node, info = session.outcome, session.node, session.info
    pages = change_pages(session.repository, node.pull_seq, page_size=run.page_size,
                         origin=None if session.recovery else info.node_id,
                         since_time=since_time, until_seq=until_seq)
    for page in progress.track_log(pages, f"pull {child.target.name}", start=node.pull_seq,
                                   end=until_seq):
        applied: list[ApplyReport] = []
        with _together(cluster.parent, run):
            for changes, detect_since in _detection(session, page.changes):
                report = cluster.parent.apply(
                    changes, parent_node=cluster.parent_id, source_node=info.node_id,
                    detect_since=detect_since, policy=run.policy, dry_run=run.dry_run,
                    overlay=_overlay(run, applied))
                applied.append(report)
                if session.recovery and detect_since is None and report.writes:
                    _parent_was_restored(cluster, run)
            if not run.dry_run and page.last_seq != node.pull_seq:
                node.pull_seq = page.last_seq
                cluster.save(node)
        # Only once the page is committed: what the run hands on to other children (the
        # renumbered versions) must be what the parent holds.
        for report in applied:
            child.pulled.add(report)
            run.pending.update((c.guid, c) for c in report.written)
            run.renumbered.update((c.guid, c) for c in report.renumbered)


def _overlay(run: _Run, applied: list[ApplyReport]) -> list[Change]:
    """What a dry run's apply stands in for the batches before it that it did not write (the
    run's, and this page's)."""
    if not run.dry_run:
        return []
    pending = {**run.pending, **{c.guid: c for report in applied for c in report.written}}
    return list(pending.values())


def _together(repository: Repository, run: _Run) -> AbstractContextManager[object]:
    """One transaction for a page and the checkpoint that covers it, where the repository
    can (a remote parent applies and records in two requests: the checkpoint then follows
    the committed page, which is as safe, since versions apply idempotently)."""
    if run.dry_run or not isinstance(repository, WritesTogether):
        return contextlib.nullcontext()
    return repository.transaction()


def _parent_was_restored(cluster: Cluster, run: _Run) -> None:
    """A child handed the parent versions made before their last exchange that the parent no
    longer had: the parent was put back from a backup. Every child may then lack versions of
    its own origin that only its siblings kept (the push normally leaves a child's own
    versions out): this run pushes them to every child, and every child not synchronized by
    this run recovers at its next sync."""
    if run.parent_restored or run.dry_run:
        return
    run.parent_restored = True
    log.warning("%s was restored from a backup: every child gets its own versions back",
                cluster.info.name)
    for node in list(cluster.nodes.values()):
        if not node.is_parent and node.is_connected and node.node_id != cluster.parent_id:
            node.incarnation = ""
            cluster.save(node)


def _detection(session: _Session, changes: list[Change]
               ) -> list[tuple[list[Change], Optional[int]]]:
    """The page in batches, each with the log position after which a parent version counts
    as concurrent (None: no conflict detection).

    Normally the whole page is checked against the push checkpoint. A recovering child
    also sends versions it held before its backup (long consolidated) and other nodes'
    versions: those are merged by precedence alone; only its own versions stamped after the
    last exchange began are new edits, checked against the old push checkpoint."""
    if not changes:
        return []
    recovery = session.recovery
    if recovery is None:
        return [(changes, session.node.push_seq)]
    boundary = stamp_from_datetime(recovery.last_sync) if recovery.last_sync else 0
    fresh = [c for c in changes if c.origin == session.info.node_id and c.hlc >= boundary]
    stale = [c for c in changes if c.origin != session.info.node_id or c.hlc < boundary]
    return [(batch, since) for batch, since in ((stale, None), (fresh, recovery.push_seq))
            if batch]


def _push(cluster: Cluster, session: _Session, run: _Run) -> None:
    child, node, target = session.outcome, session.node, session.outcome.target
    try:
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            guarded = not run.dry_run and attempt < PUSH_ATTEMPTS
            since_time = target.last_sync_time if attempt == 1 and not session.recovery \
                else None
            if _push_pages(cluster, session, run, guarded, since_time):
                break
            # The child's users changed an element being pushed: consolidate their version
            # first, so that the parent sees the conflict, logs the loser and applies the policy.
            _consolidate(cluster, session, run, since_time=None,
                         until_seq=session.repository.info().seq)
        if not run.dry_run:
            # The child first: if recording it at the parent then fails, the two disagree
            # and the next run exchanges everything again, which is safe. A session that
            # moved nothing leaves the incarnation as it is: a copy taken before it is no
            # older than the child.
            if session.exchanged:
                node.incarnation = session.repository.renew_incarnation()
            cluster.save(node, last_sync=run.started)
        _collect_warnings(session.repository, child.pushed)
        child.last_sync_time = target.last_sync_time if run.dry_run else run.started
        log.info("pushed %d change(s) to %s", child.pushed.writes, target.name)
    except RepositoryError as exc:
        log.warning("sync with %s failed while pushing: %s", target.name, exc)
        child.fail(exc)


def _push_pages(cluster: Cluster, session: _Session, run: _Run, guarded: bool,
                since_time: Optional[datetime]) -> bool:
    """Push the parent's versions from the push checkpoint on; ``guarded``: a page is refused
    if the child changed one of its elements since its last consolidation (then False).

    Versions the pulls renumbered go first, so the child frees an id before the element that
    keeps it arrives. A recovering child gets every version, its own included: a restored
    child lost the ones it made after its backup."""
    child, node = session.outcome, session.node
    if run.renumbered and not _deliver(cluster, session, run, list(run.renumbered.values()),
                                       guarded):
        return False
    head = cluster.parent.info().seq
    pages = change_pages(cluster.parent, node.push_seq, page_size=run.page_size,
                         exclude_origin=None if session.recovery or run.parent_restored
                         else session.info.node_id,
                         since_time=since_time, until_seq=head)
    for page in progress.track_log(pages, f"push {child.target.name}", start=node.push_seq,
                                   end=head):
        changes = page.changes
        if run.dry_run and not page.more:
            changes = _with_pending(changes, run.pending, session.info.node_id)
        if changes and not _deliver(cluster, session, run, changes, guarded):
            return False
        if page.last_seq != node.push_seq:
            node.push_seq = page.last_seq
            if page.more and not run.dry_run:  # the last page's with the sync's end (_push)
                cluster.save(node)
    return True


def _deliver(cluster: Cluster, session: _Session, run: _Run, changes: list[Change],
             guarded: bool) -> bool:
    """Apply one batch of the parent's versions at the child; False if the guard refused it."""
    node = session.node
    report = session.repository.apply(
        changes, parent_node=cluster.parent_id, dry_run=run.dry_run,
        refuse_if_changed_since=node.pull_seq if guarded else None)
    if report.refused:
        return False
    session.outcome.pushed.add(report)
    if report.seq_before == node.pull_seq:
        # Nothing was written at the child since we read it: skip our own echo.
        node.pull_seq = report.seq_after
    return True


def _collect_warnings(repository: Repository, report: ApplyReport) -> None:
    """What a repository could not do as asked outside any apply (an Esri server's element
    still held back, read while nothing was pushed to it): reported by every run."""
    if isinstance(repository, ReportsWarnings):
        report.warnings.extend(repository.take_warnings())


def _with_pending(changes: list[Change], pending: dict[str, Change],
                  child_node: str) -> list[Change]:
    """What a real run's feed would end with: the versions phase 1 would have written."""
    extra = {guid: c for guid, c in pending.items() if c.origin != child_node}
    return [c for c in changes if c.guid not in extra] + list(extra.values())
