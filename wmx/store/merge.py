"""The merge rules: what a store keeps when a version of an element arrives from elsewhere.

Pure functions of the stored version, the incoming one and the context of the apply (who
sends, what counts as concurrent, which policy): no store, no SQL, no clock. The decisions:

* the same version again: nothing to do (replication never edits versions, so re-sending is
  harmless); two versions under one stamp that say different things (a node put back from a
  backup stamped again) are twins: a fixed order of their contents keeps one everywhere;
* another version: the higher precedence wins (``wmx.model.changes.precedence``), so every
  store converges whatever the order of delivery; at the parent, a version the child made
  while the parent's changed too is a *conflict*: the policy picks the winner, the loser goes
  to the conflict log, and a winner older than the loser is *re-stamped* so it wins everywhere;
* a child's version sent again after the parent dealt with it (a lost reply, an interrupted
  run) is not a new conflict;
* a new element whose integer id another element holds is *renumbered* at the parent (every
  kind whose ids come from a node's block, ``RENUMBERED_KINDS``), else refused and logged;
  one whose unique name is taken is *renamed*
  ``_1``, ``_2``… at the parent (Esri's rule). Both are new versions the parent writes, so
  they travel back to every child;
* a job whose deletion loses (a concurrent edit elsewhere wins) keeps its records: the
  parent writes back those its own deletion took (:func:`deleted_with`), and refuses a
  child's deletion of them once that child's deletion of the job has lost there, writing its
  own versions again so that they win back at that child.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any, Callable, Optional

import attrs

from wmx.model import codec
from wmx.model.changes import Change, ConflictPolicy, incoming_wins, precedence, twin_order
from wmx.model.records import RECORD_TYPES, RENUMBERED_KINDS, STORAGE_EMBEDDED, Attachment
from wmx.model.records import _camel as camel_case

NAME_KEYS = ("name", "userName", "key")
"""Where an element's unique name sits in its Esri body, whatever its kind."""


@attrs.frozen
class MergeContext:
    """Who applies what: the cluster's parent, whether these are a child's versions being
    consolidated at the parent (only then are conflicts detected, names and ids settled), the
    log position after which a local version is new to that child, and the policy."""

    parent_node: str
    from_child: bool = False
    detect_since: Optional[int] = None
    policy: ConflictPolicy = ConflictPolicy.NEWEST


class IdClash(enum.Enum):
    """What becomes of a new element whose integer id another element already holds."""

    RESENT = "resent"
    """This very version lost that clash before and is sent again: nothing to do."""
    REFUSED = "refused"
    """Not applied; kept in the conflict log (never overwrites the holder)."""
    RENUMBERED = "renumbered"
    """Kept under the next free id of its node's block; the clash is logged."""
    ACCEPTED = "accepted"
    """Applied as it is: the parent settles ids for its cluster, so the local element that
    holds the id is one the parent has renumbered (its new version follows in the feed) or
    will renumber when it next consolidates this child. Both share the id until then."""


def settle_id_clash(change: Change, context: MergeContext, *, resent: bool) -> IdClash:
    if not context.from_child:
        return IdClash.ACCEPTED
    if resent:
        return IdClash.RESENT
    if change.kind in RENUMBERED_KINDS:
        return IdClash.RENUMBERED
    return IdClash.REFUSED


@attrs.frozen
class Verdict:
    """The decision about an element the store already holds."""

    winner: Change
    loser: Change
    conflict: bool
    """A concurrent edit: the loser goes to the conflict log."""
    write: bool
    """Whether the winner must be written (False: the stored version stays)."""
    restamp: bool
    """The policy chose the older version: it is written with a fresh stamp so that it also
    wins on every other repository."""


def judge(local: Change, local_seq: int, incoming: Change, context: MergeContext, *,
          consolidated: Callable[[], bool]) -> Optional[Verdict]:
    """The verdict on ``incoming`` against the stored ``local`` (None: the same version).

    ``consolidated`` tells whether the parent has already dealt with ``incoming`` (see
    :func:`already_consolidated`); it is asked only about a would-be conflict, since
    answering may take a look at the conflict log."""
    if local.version == incoming.version:
        return _twins(local, incoming, context, consolidated)
    conflict = (context.from_child and context.detect_since is not None
                and local_seq > context.detect_since and local.origin != incoming.origin
                and not consolidated())
    wins = incoming_wins(local.version, incoming.version, context.parent_node, context.policy,
                         conflict, context.from_child)
    winner, loser = (incoming, local) if wins else (local, incoming)
    restamp = precedence(*winner.version, context.parent_node) < \
        precedence(*loser.version, context.parent_node)
    return Verdict(winner=winner, loser=loser, conflict=conflict, write=wins or restamp,
                   restamp=restamp)


def _twins(local: Change, incoming: Change, context: MergeContext,
           consolidated: Callable[[], bool]) -> Optional[Verdict]:
    """Two versions under one stamp: the same version (None), or twins that a node restored
    from a backup stamped again (:func:`wmx.model.changes.twin_order` keeps one everywhere).
    At the parent the losing twin is a lost edit like any concurrent one: it is logged."""
    if _says(local) == _says(incoming):
        return None
    wins = twin_order(*_says(incoming)) > twin_order(*_says(local))
    winner, loser = (incoming, local) if wins else (local, incoming)
    return Verdict(winner=winner, loser=loser, conflict=context.from_child and not consolidated(),
                   write=wins, restamp=False)


def _says(change: Change) -> tuple[bool, Optional[str], Optional[bytes]]:
    return (change.deleted, change.body, change.content)


def already_consolidated(local: Change, incoming: Change, *, logged_as_loser: bool) -> bool:
    """A child version sent again (a retry after a lost reply or an interrupted run) that this
    parent has already dealt with: it lost a conflict (it is in the conflict log), or the local
    version was made from it (re-stamped for a policy, or renamed ``_N``)."""
    if logged_as_loser:
        return True
    if (local.deleted, local.content) != (incoming.deleted, incoming.content):
        return False
    if local.body == incoming.body:
        return True
    if not (local.name and incoming.name and incoming.body and local.body
            and is_renamed_from(local.name, incoming.name)):
        return False
    return _body_with_name(incoming, local.name) == codec.loads(local.body)


def deleted_with(job: Change, record: Change) -> bool:
    """Whether ``record`` is a tombstone that the deletion ``job`` (a job's tombstone) wrote:
    deleting a job writes the job's tombstone, then its records' ones, in one transaction, so
    those come from the same node, stamped after it. A record deleted on its own before is not
    (nothing deletes a record of a deleted job)."""
    return (record.deleted and record.job_guid == job.guid and record.origin == job.origin
            and record.hlc > job.hlc)


def revivable(record: Change) -> bool:
    """Whether a record's tombstone still says all its live version said: every tombstone
    keeps its body, but an embedded attachment's bytes went with the delete."""
    if not record.body:
        return False
    return record.kind != Attachment.KIND or \
        Attachment.from_esri(codec.loads(record.body)).storage_type != STORAGE_EMBEDDED


def revived(record: Change, *, hlc: int, origin: str) -> Change:
    """A record its job's lost deletion took, back as a version the reviving store writes."""
    return attrs.evolve(record, deleted=False, hlc=hlc, origin=origin)


def is_renamed_from(name: str, original: str) -> bool:
    """Whether ``name`` is ``original`` with Esri's ``_N`` suffix."""
    return name.startswith(f"{original}_") and name[len(original) + 1:].isdigit()


def candidate_names(name: str) -> Iterator[str]:
    """The names Esri's rule tries, in order, for an element whose name is taken."""
    suffix = 1
    while True:
        yield f"{name}_{suffix}"
        suffix += 1


def needs_renaming(change: Change, context: MergeContext) -> bool:
    """Only the parent renames, while consolidating a child's live, named versions."""
    return context.from_child and change.name is not None and not change.deleted


def renamed(change: Change, name: str, *, hlc: int, origin: str) -> Change:
    """``change`` under a new unique name, as a version the renaming store writes."""
    body = _body_with_name(change, name)
    return attrs.evolve(change, name=name, body=codec.dumps(body), hlc=hlc, origin=origin)


def renumbered(change: Change, int_id: int, *, hlc: int, origin: str) -> Change:
    """``change`` under a new integer id, as a version the renumbering store writes."""
    body = codec.loads(change.body) if change.body else {}
    body[camel_case(RECORD_TYPES[change.kind].ID_FIELD or "id")] = int_id
    return attrs.evolve(change, int_id=int_id, body=codec.dumps(body), hlc=hlc, origin=origin)


def restamped(change: Change, *, hlc: int, origin: str) -> Change:
    return attrs.evolve(change, hlc=hlc, origin=origin)


def _body_with_name(change: Change, name: str) -> dict[str, Any]:
    body = codec.loads(change.body) if change.body else {}
    for key in NAME_KEYS:
        if body.get(key) == change.name:
            body[key] = name
    return body
