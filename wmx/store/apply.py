"""Applying a batch of versions from elsewhere to one store: the algorithm, written once over
:class:`wmx.store.protocol.ApplyTarget` (like PouchDB's ``processDocs``), with every decision
taken by :mod:`wmx.store.merge`.

It runs inside the caller's write transaction and never commits, rolls back or checks what
may enter the store (the store refuses inadmissible rows before calling it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Optional

import attrs

from wmx.model.changes import Change, ConflictPolicy
from wmx.model.records import Job
from wmx.repository.base import ApplyReport, ConflictRecord
from wmx.store import merge
from wmx.store.merge import IdClash, MergeContext
from wmx.store.protocol import ApplyTarget, StoredVersion


def _as_tuple(changes: Iterable[Change]) -> tuple[Change, ...]:
    return tuple(changes)


@attrs.frozen
class ApplyOptions:
    """One ``Repository.apply`` call's terms (see that method's contract), in one record."""

    parent_node: str
    source_node: Optional[str] = None
    detect_since: Optional[int] = None
    policy: ConflictPolicy = ConflictPolicy.NEWEST
    dry_run: bool = False
    overlay: tuple[Change, ...] = attrs.field(default=(), converter=_as_tuple)
    refuse_if_changed_since: Optional[int] = None

    @property
    def context(self) -> MergeContext:
        return MergeContext(self.parent_node, from_child=self.source_node is not None
                            and self.source_node != self.parent_node,
                            detect_since=self.detect_since, policy=self.policy)


def apply_batch(target: ApplyTarget, changes: Sequence[Change],
                options: ApplyOptions) -> ApplyReport:
    """What ``Repository.apply`` does inside the store's write transaction (rolled back by
    the store for a dry run): the push guard, the overlay, the batch, the log positions."""
    start, _now = target.positions()
    if options.refuse_if_changed_since is not None and target.written_since(
            [change.guid for change in changes], options.refuse_if_changed_since):
        return ApplyReport(seq_before=start, seq_after=start, refused=True)
    if options.overlay:
        apply_versions(target, options.overlay, MergeContext(options.parent_node))
    report = apply_versions(target, changes, options.context, keep_written=options.dry_run)
    report.seq_before, report.seq_after = start, target.positions()[1]
    return report


def apply_versions(target: ApplyTarget, changes: Sequence[Change], context: MergeContext, *,
                   keep_written: bool = False) -> ApplyReport:
    """Apply ``changes`` in order; the report counts what was written and lists conflicts,
    renumbered versions and (``keep_written``) every version written."""
    report = ApplyReport()
    stored = target.versions([change.guid for change in changes])
    for change in changes:
        target.observe(change.hlc)
        previous = stored.get(change.guid)
        written: Optional[StoredVersion]
        if context.from_child and _keeps_its_job(target, change, previous, report):
            written = _rewritten(target, previous, report)
        else:
            written = _apply_one(target, change, previous, context, report)
        if written is None:
            continue
        revived = _revive_job_records(target, previous, written, report) \
            if context.from_child else []
        for version in (written, *revived):
            stored[version.change.guid] = version
            if keep_written:
                report.written.append(version.change)
    return report


def _keeps_its_job(target: ApplyTarget, change: Change, previous: Optional[StoredVersion],
                   report: ApplyReport) -> bool:
    """A child's deletion of a record that its deletion of the job took, after that deletion
    of the job lost here: refused (logged as a lost edit), the record lives on."""
    if not (change.deleted and change.job_guid and previous is not None
            and not previous.change.deleted) or target.logged_as_loser(change):
        return False  # (a deletion refused before and sent again loses as any resent loser)
    lost = target.lost_delete(change.job_guid)
    if lost is None or not merge.deleted_with(lost, change):
        return False
    report.conflicts.append(_log(target, change, previous.change, "concurrent_edit"))
    return True


def _rewritten(target: ApplyTarget, previous: Optional[StoredVersion],
               report: ApplyReport) -> StoredVersion:
    """The stored version written again under a fresh stamp, to win where it had lost."""
    assert previous is not None
    again = merge.restamped(previous.change, hlc=target.stamp(), origin=target.node_id)
    report.updated += 1
    return StoredVersion(again, target.write(again, previous))


def _revive_job_records(target: ApplyTarget, previous: Optional[StoredVersion],
                        written: StoredVersion, report: ApplyReport) -> list[StoredVersion]:
    """A child's live job that beat this parent's deletion of it: the records that deletion
    took come back (new versions of this parent, so they reach every child)."""
    if previous is None or written.change.deleted or not previous.change.deleted or \
            previous.change.kind != Job.KIND:
        return []
    back = []
    for record in target.job_records(previous.change.guid):
        if merge.deleted_with(previous.change, record.change) and merge.revivable(record.change):
            change = merge.revived(record.change, hlc=target.stamp(), origin=target.node_id)
            back.append(StoredVersion(change, target.write(change, record)))
    report.updated += len(back)
    return back


def _apply_one(target: ApplyTarget, change: Change, previous: Optional[StoredVersion],
               context: MergeContext, report: ApplyReport) -> Optional[StoredVersion]:
    if previous is None:
        return _insert(target, change, context, report)
    local = previous.change
    verdict = merge.judge(local, previous.seq, change, context,
                          consolidated=lambda: merge.already_consolidated(
                              local, change, logged_as_loser=target.logged_as_loser(change)))
    if verdict is None:
        report.unchanged += 1
        return None
    if verdict.conflict:
        report.conflicts.append(_log(target, verdict.loser, verdict.winner, "concurrent_edit"))
    if not verdict.write:
        report.unchanged += 1
        return None
    winner = verdict.winner
    if verdict.restamp:
        winner = merge.restamped(winner, hlc=target.stamp(), origin=target.node_id)
    winner = _named(target, winner, context, report)
    seq = target.write(winner, previous)
    if winner.deleted and not local.deleted:
        report.deleted += 1
    else:
        report.updated += 1
    return StoredVersion(winner, seq)


def _insert(target: ApplyTarget, change: Change, context: MergeContext,
            report: ApplyReport) -> Optional[StoredVersion]:
    if change.int_id is not None and not change.deleted and \
            target.id_taken(change.kind, change.int_id, change.guid):
        clash = merge.settle_id_clash(
            change, context, resent=context.from_child and target.logged_as_loser(change))
        if clash is IdClash.RESENT:
            report.unchanged += 1
            return None
        if clash is IdClash.REFUSED:
            report.conflicts.append(_log(target, change, None, "id_collision"))
            return None
        if clash is IdClash.RENUMBERED:
            change = _renumber(target, change, report)
    change = _named(target, change, context, report)
    seq = target.write(change, None)
    report.inserted += not change.deleted
    report.deleted += change.deleted
    return StoredVersion(change, seq)


def _renumber(target: ApplyTarget, change: Change, report: ApplyReport) -> Change:
    """The newcomer under the next free id of its node's block; the clash is logged."""
    renumbered = merge.renumbered(change, target.free_int_id(change.kind, change.origin),
                                  hlc=target.stamp(), origin=target.node_id)
    report.conflicts.append(_log(target, change, renumbered, "id_renumbered"))
    report.renumbered.append(renumbered)
    return renumbered


def _named(target: ApplyTarget, change: Change, context: MergeContext,
           report: ApplyReport) -> Change:
    """Esri's rule: an incoming element whose name is taken gets ``_1`` (``_2``...)."""
    if not merge.needs_renaming(change, context):
        return change
    assert change.name is not None
    if not target.name_taken(change.kind, change.name, change.guid):
        return change
    name = next(candidate for candidate in merge.candidate_names(change.name)
                if not target.name_taken(change.kind, candidate, change.guid))
    report.renamed += 1
    return merge.renamed(change, name, hlc=target.stamp(), origin=target.node_id)


def _log(target: ApplyTarget, loser: Change, winner: Optional[Change],
         reason: str) -> ConflictRecord:
    record = ConflictRecord(
        guid=loser.guid, kind=loser.kind, int_id=loser.int_id,
        winner_origin=winner.origin if winner else "", winner_hlc=winner.hlc if winner else 0,
        loser_origin=loser.origin, loser_hlc=loser.hlc, loser_deleted=loser.deleted,
        loser_body=loser.body, reason=reason, detected_at=datetime.now(timezone.utc),
        winner_int_id=winner.int_id if winner and winner.int_id != loser.int_id else None)
    target.log_conflict(record)
    return record
