"""``wmx status`` and ``wmx conflicts``: a repository's cluster and its conflict log, every
node by name; ``wmx conflicts --restore N`` writes a losing job version back as a new edit.

Reading is all these commands do, except ``--restore``, which writes through the same
JobTracking calls a user's edit would (so the restored version replicates like any edit).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Optional

from wmx.cli.output import (
    EXIT_OK,
    INTERRUPTED_READING,
    CommandError,
    Output,
    acting_user,
    repository_failure,
)
from wmx.engine.status import StatusReport, repository_status
from wmx.errors import INVALID_VALUE
from wmx.model.clock import stamp_datetime
from wmx.model.records import RECORD_TYPES, Job
from wmx.repository import RepositoryError
from wmx.repository.base import ConflictRecord
from wmx.repository.jobs import JOB_EDITABLE
from wmx.tools.connect import open_location
from wmx.valuetable import format_time

_NOT_RESTORED = frozenset({"stage", "created_by", "created_date"})
"""Fields a restore leaves alone: the job's lifecycle belongs to its current version."""


def _report(location: str) -> StatusReport:
    try:
        repository = open_location(location)
        try:
            return repository_status(repository)
        finally:
            repository.close()
    except RepositoryError as exc:
        raise repository_failure(exc, location) from None


def _role(is_parent: bool, connected: bool) -> str:
    if is_parent:
        return "parent"
    return "child" if connected else "disconnected child"


def element_name(conflict: ConflictRecord) -> str:
    """What the conflict was about, in Workflow Manager terms: ``job 12 "Survey 12"``."""
    label = conflict.kind.replace("_", " ")
    if conflict.int_id is not None:
        label += f" {conflict.int_id}"
    record = _loser_record(conflict)
    name = record.unique_name if record is not None and record.NAME_FIELD else \
        getattr(record, "name", None)
    return f"{label} \"{name}\"" if name else label


def _loser_record(conflict: ConflictRecord) -> Optional[Any]:
    record_type = RECORD_TYPES.get(conflict.kind)
    if record_type is None or not conflict.loser_body:
        return None
    try:
        return record_type.from_esri(json.loads(conflict.loser_body), conflict.guid)
    except (ValueError, TypeError):
        return None


def conflict_data(report: StatusReport, number: int, conflict: ConflictRecord) -> dict[str, Any]:
    return {"number": number, "element": element_name(conflict), "kind": conflict.kind,
            "id": conflict.int_id, "guid": conflict.guid,
            "winner": report.name_of(conflict.winner_origin),
            "winner_time": stamp_datetime(conflict.winner_hlc),
            "loser": report.name_of(conflict.loser_origin),
            "loser_time": stamp_datetime(conflict.loser_hlc),
            "loser_deleted": conflict.loser_deleted, "reason": conflict.reason,
            "detected_at": conflict.detected_at}


def _conflict_line(item: dict[str, Any]) -> str:
    lost = "a delete" if item["loser_deleted"] else "its version"
    return (f"  #{item['number']:<3} {item['element']}: kept {item['winner']} "
            f"({format_time(item['winner_time'])}), lost {lost} from {item['loser']} "
            f"({format_time(item['loser_time'])})")


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    report = _report(args.location)
    info = report.info
    parent = report.name_of(info.parent_node_id) if info.parent_node_id else None
    nodes: list[dict[str, Any]] = [
        {"name": e.node.name, "node_id": e.node.node_id, "url": e.node.url,
         "role": _role(e.node.is_parent, e.node.is_connected),
         "last_sync": e.node.last_sync, "pull_seq": e.node.pull_seq,
         "push_seq": e.node.push_seq, "pending_to_child": e.pending_to_child}
        for e in report.children]
    conflicts = [conflict_data(report, n, c) for n, c in enumerate(report.conflicts, 1)]
    out.data = {"repository": {"name": info.name, "node_id": info.node_id, "seq": info.seq,
                               "incarnation": info.incarnation,
                               "id_block_start": info.id_block_start,
                               "parent": None if parent is None else
                               {"name": parent, "node_id": info.parent_node_id}},
                "nodes": nodes, "conflicts": conflicts}
    out.line(f"Repository   {info.name}")
    out.line(f"Node id      {info.node_id}")
    out.line(f"Change log   {info.seq} (incarnation {info.incarnation})")
    out.line(f"Job ids from {info.id_block_start}")
    if info.parent_node_id and not report.knows(info.parent_node_id):
        out.line(f"Parent       {parent} (a child keeps only its parent's id: wmx status on the "
                 "parent names it and its children)")
    elif parent is not None:
        out.line(f"Parent       {parent}")
    elif nodes:
        out.line("Parent       (none: this repository is the parent of its cluster)")
    else:
        out.line("Parent       (none: this repository is not a child)")
    if nodes:
        out.line("Cluster nodes:")
    for node in nodes:
        when = format_time(node["last_sync"]) if node["last_sync"] else "never"
        pending = "" if node["pending_to_child"] is None else \
            f", {node['pending_to_child']} change(s) waiting to be sent"
        out.line(f"  {node['name']:20} {node['role']:18} last sync {when}; checkpoints pull "
                 f"{node['pull_seq']} push {node['push_seq']}{pending}")
    out.line(f"Conflicts logged: {len(conflicts)}")
    for item in conflicts[-args.conflicts:] if args.conflicts > 0 else []:
        out.line(_conflict_line(item))
    if conflicts:
        out.line(f"  (wmx conflicts {args.location} --show N shows a losing version)")
    return EXIT_OK


def cmd_conflicts(args: argparse.Namespace, out: Output) -> int:
    report = _report(args.location)
    conflicts = [conflict_data(report, n, c) for n, c in enumerate(report.conflicts, 1)]
    chosen = args.show or args.restore
    if chosen is None:
        out.data = {"repository": report.info.name, "conflicts": conflicts}
        out.line(f"Conflicts logged at {report.info.name}: {len(conflicts)}")
        for item in conflicts:
            out.line(_conflict_line(item))
        if conflicts:
            out.line(f"wmx conflicts {args.location} --show N    the losing version of one")
            out.line(f"wmx conflicts {args.location} --restore N write it back as a new edit")
        return EXIT_OK
    if not 1 <= chosen <= len(conflicts):
        raise CommandError(INVALID_VALUE, f"There is no conflict #{chosen} at "
                                          f"{report.info.name} ({len(conflicts)} logged)")
    conflict, item = report.conflicts[chosen - 1], conflicts[chosen - 1]
    body = json.loads(conflict.loser_body) if conflict.loser_body else None
    out.data = {"repository": report.info.name, "conflict": {**item, "loser_body": body}}
    out.line(_conflict_line(item))
    out.line(f"  reason: {conflict.reason}")
    if args.show is not None:
        out.line("Losing version:" if body is not None else "Losing version: (a delete)")
        if body is not None:
            out.line(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    restored = _restore(args, conflict)
    out.data["restored"] = restored
    out.line(f"Restored: {restored}")
    return EXIT_OK


def _restore(args: argparse.Namespace, conflict: ConflictRecord) -> str:
    """Write the losing job version back through JobTracking; other kinds: say how."""
    if conflict.kind != "job" or conflict.int_id is None:
        raise CommandError(INVALID_VALUE, f"Only job versions can be restored from the command "
                                          f"line; this is a {conflict.kind}. Its losing "
                                          f"version is shown by --show {args.restore}.")
    user = acting_user(args)
    try:
        repository = open_location(args.location)
        try:
            return _restore_job(repository, conflict, user)
        finally:
            repository.close()
    except RepositoryError as exc:
        raise repository_failure(exc, args.location) from None


def _restore_job(repository: Any, conflict: ConflictRecord, user: str) -> str:
    """``repository`` offers JobTracking (the embedded store and the REST client both do)."""
    job_id = conflict.int_id
    if conflict.loser_deleted:
        repository.delete_job(job_id, user=user)
        return f"job {job_id} deleted again (the losing version was a delete)"
    loser = Job.from_esri(json.loads(conflict.loser_body or "{}"), conflict.guid)
    current = repository.get_job(job_id)
    fields = {name: getattr(loser, name) for name in sorted(JOB_EDITABLE - _NOT_RESTORED)
              if getattr(loser, name) != getattr(current, name)}
    if fields:
        repository.update_job(job_id, user=user, **fields)
    return f"job {job_id}: {', '.join(fields) or 'nothing differed'} set as the losing version " \
           f"had it, as a new edit by {user}"


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command("status", cmd_status, "show a repository's cluster, checkpoints and conflicts",
                  "wmx status redlands.wmxdb --conflicts 5", INTERRUPTED_READING)
    sub.add_argument("location", help="repository path or WMServer URL")
    sub.add_argument("--conflicts", type=int, default=10, metavar="N",
                     help="how many of the latest conflicts to list (default 10)")

    sub = command("conflicts", cmd_conflicts,
                  "the conflict log: what lost to what, each losing version, and restoring one",
                  "wmx conflicts redlands.wmxdb --show 2")
    sub.add_argument("location", help="repository path or WMServer URL (the parent keeps the "
                                      "log)")
    which = sub.add_mutually_exclusive_group()
    which.add_argument("--show", type=int, metavar="N",
                       help="print conflict N's losing version")
    which.add_argument("--restore", type=int, metavar="N",
                       help="write conflict N's losing job version back as a new edit (it "
                            "then replicates like any edit)")
