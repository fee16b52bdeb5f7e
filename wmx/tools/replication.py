"""Replicate Job Data (alias Create Job Data Replica) and Synchronize Job Data.

The tools validate their parameters, open the parent, hand plain Python values to the engine
and turn its outcome into arcpy messages and outputs. No replication logic lives here.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from wmx.engine.identity import SameRepository
from wmx.engine.outcome import FAILED, SKIPPED, ChildOutcome, ChildTarget, RunOutcome
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.errors import (
    INVALID_VALUE,
    NOT_A_MEMBER,
    REPLICATION_CONFLICT,
    SAME_AS_INPUT,
    SYNC_INCOMPLETE,
    not_a_member_text,
)
from wmx.model.changes import ConflictPolicy
from wmx.model.clock import stamp_datetime
from wmx.model.locations import shown_location
from wmx.repository.base import ConflictRecord
from wmx.result import Result
from wmx.tools._base import (
    Parameter,
    ToolContext,
    ToolFailure,
    ToolSpec,
    ValidationFailure,
    run_tool,
)
from wmx.tools.connect import open_checked, open_location, rescue_folder
from wmx.tools.failures import PARENT, Failure, Node, child_failure, guard, guarded_opener
from wmx.valuetable import LastSyncRow, format_last_sync, format_time, parse_child_rows

PARENT_URL = Parameter("Input_Parent_Repository_URL", "Parent Repository URL", "String")
PARENT_NAME = Parameter("Input_Parent_Repository_Name", "Parent Repository Name", "String")
CHILDREN = Parameter("Input_Multi_Name", "Child Repository Names and URLs", "Value Table")
LAST_SYNC = Parameter("Output_LastSync", "Last Synchronized", "Value Table", "Output", False)

REPLICATE = ToolSpec("ReplicateJobData", "Replicate Job Data", (
    PARENT_URL, PARENT_NAME, CHILDREN,
    Parameter("Output_CreateReplicaStatus", "Create Replica Status", "Long", "Output", False),
    LAST_SYNC))
CREATE_REPLICA = ToolSpec("CreateJobDataReplica", "Create Job Data Replica",
                          REPLICATE.parameters)
SYNCHRONIZE = ToolSpec("SynchronizeJobData", "Synchronize Job Data", (
    PARENT_URL, PARENT_NAME, CHILDREN,
    Parameter("Output_SynchronizeReplicaStatus", "Status of Replica Synchronization", "Long",
              "Output", False),
    LAST_SYNC))


def _targets(ctx: ToolContext, params: dict[str, Any], synchronize_rows: bool
             ) -> list[ChildTarget]:
    rows, warnings = parse_child_rows(params[CHILDREN.name], synchronize=synchronize_rows,
                                      parent_url=str(params[PARENT_URL.name]))
    for warning in warnings:
        ctx.add_warning(warning)
    return [ChildTarget(row.name, row.url, row.connected, row.last_sync_time) for row in rows]


def _describe_conflict(conflict: ConflictRecord, names: dict[str, str]) -> str:
    what = f"{conflict.kind.replace('_', ' ')} {conflict.int_id}" if conflict.int_id is not None \
        else f"{conflict.kind.replace('_', ' ')} {conflict.guid}"
    if conflict.reason == "id_collision":
        return (f"Conflict: {what} from {names.get(conflict.loser_origin, conflict.loser_origin)}"
                " has the id of a different element and was not applied; it is kept in the"
                " conflict log")
    if conflict.reason == "id_renumbered":
        return (f"Conflict: {what} from {names.get(conflict.loser_origin, conflict.loser_origin)}"
                f" has the id of a different {conflict.kind.replace('_', ' ')}; both are kept,"
                f" it is now {conflict.kind.replace('_', ' ')} {conflict.winner_int_id}"
                " (the version with the old id is kept in the conflict log)")
    kept = names.get(conflict.winner_origin, conflict.winner_origin)
    lost = names.get(conflict.loser_origin, conflict.loser_origin)
    return (f"Conflict: {what} changed on both sides; kept the version from {kept} "
            f"({format_time(stamp_datetime(conflict.winner_hlc))}), the version from {lost} "
            f"({format_time(stamp_datetime(conflict.loser_hlc))}) is kept in the conflict log")


def _report(ctx: ToolContext, outcome: RunOutcome, names: dict[str, str]) -> list[Failure]:
    """Write what happened to each child; return the failures, in table order."""
    failures = []
    for child in outcome.children:
        target = child.target
        if child.status == FAILED:
            failures.append(child_failure(child))
        elif child.status == SKIPPED:
            ctx.add_message(f"{target.name}: not connected, skipped")
        elif child.export_file:
            ctx.add_message(f"{target.name}: exported {child.loaded_rows} element(s) to "
                            f"{child.export_file}; load it at the child with ImportJobData "
                            "(REPLACE)")
        elif child.loaded_rows:
            ctx.add_message(f"{target.name}: replaced with a copy of {outcome.parent_name} "
                            f"({child.loaded_rows} element(s))")
        else:
            ctx.add_message(_sync_line(child))
        if child.notice:
            ctx.add_warning(child.notice)
        for warning in (*child.pulled.warnings, *child.pushed.warnings):
            ctx.add_warning(warning)  # e.g. what an Esri server's surface cannot write
    for conflict in outcome.conflicts:
        ctx.add_warning(_describe_conflict(conflict, names), REPLICATION_CONFLICT)
    if outcome.dry_run:
        ctx.add_message("Dry run: nothing was written")
    return failures


def _conclude(ctx: ToolContext, outcome: RunOutcome, failures: list[Failure], done: str,
              outputs: dict[str, str]) -> None:
    """Decide how a run with failures ends (SPEC §2.1): the parent failed, or no child was
    reached -> the tool failed (errors, raised); some children failed -> a partial run
    (warnings, "Completed with errors", the Result returned)."""
    own = [f for f in failures if f.node.role != PARENT]
    of_parent = [f for f in failures if f.node.role == PARENT]
    processed = [c for c in outcome.children if c.status != SKIPPED]
    for failure, child in zip(failures, outcome.failed):
        if failure.node.role == PARENT:
            ctx.add_message(f"{child.target.name} ({shown_location(child.target.url)}) was not "
                            f"{done}: the parent failed")
    if of_parent:
        for failure in own:
            ctx.add_warning(failure.text, failure.code)
        raise ToolFailure(of_parent[0].code, of_parent[0].text, outputs)
    if own and len(own) == len(processed):
        for failure in own:
            ctx.add_error(failure.text, failure.code)
    elif own:
        for failure in own:
            ctx.add_warning(failure.text, failure.code)
        ctx.add_warning(f"{len(own)} of {len(processed)} children failed; the others were "
                        f"{done}. Output_LastSync says which.", SYNC_INCOMPLETE)
        ctx.mark_incomplete()


def _sync_line(child: ChildOutcome) -> str:
    pulled, pushed = child.pulled, child.pushed
    return (f"{child.target.name}: {pulled.inserted} new, {pulled.updated} changed, "
            f"{pulled.deleted} deleted element(s) consolidated into the parent; "
            f"{pushed.inserted} new, {pushed.updated} changed, {pushed.deleted} deleted "
            "element(s) sent to the child")


def _outputs(spec: ToolSpec, outcome: RunOutcome) -> dict[str, str]:
    rows = [LastSyncRow(c.target.name, c.target.connected, shown_location(c.target.url),
                        c.last_sync_time, c.status) for c in outcome.children]
    return {spec.outputs[0].name: str(outcome.status_code),
            LAST_SYNC.name: format_last_sync(rows)}


def _run(spec: ToolSpec, ctx: ToolContext, params: dict[str, Any], *, synchronizing: bool,
         dry_run: bool = False, policy: ConflictPolicy = ConflictPolicy.NEWEST
         ) -> dict[str, str]:
    targets = _targets(ctx, params, synchronizing)
    parent_url = str(params[PARENT_URL.name])
    parent_name = str(params[PARENT_NAME.name])
    opened = open_checked(parent_url, PARENT_URL.label, parent_name, PARENT_NAME.label,
                          dry_run=dry_run)
    node = Node(PARENT, parent_name.strip(), parent_url)
    parent = guard(opened, node, fail_fast=True)
    open_child = guarded_opener(functools.partial(open_location, dry_run=dry_run),
                                {t.url: t.name for t in targets})
    try:
        info = parent.info()
        names = {info.node_id: info.name}
        names.update((node.node_id, node.name) for node in parent.nodes())
        if synchronizing:
            outcome = synchronize(parent, targets, open_child, policy=policy,
                                  dry_run=dry_run, parent_location=parent_url)
        else:
            outcome = replicate(parent, targets, open_child, parent_location=parent_url,
                                rescue=rescue_folder)
    except SameRepository as exc:  # found before anything was written
        code = SAME_AS_INPUT if exc.same_as_parent else INVALID_VALUE
        raise ValidationFailure([(code, CHILDREN.label, str(exc))]) from None
    finally:
        parent.close()
    failures = _report(ctx, outcome, names)
    outputs = _outputs(spec, outcome)
    _conclude(ctx, outcome, failures, "synchronized" if synchronizing else "replicated",
              outputs)
    return outputs


def _policy(value: Any) -> ConflictPolicy:
    try:
        return ConflictPolicy(str(value).lower())
    except ValueError:
        choices = [p.value for p in ConflictPolicy]
        raise ValidationFailure([(NOT_A_MEMBER, "Conflict Policy", not_a_member_text(choices))]
                                ) from None


def _replicate(spec: ToolSpec, inputs: tuple) -> Result:
    return run_tool(spec, inputs, {},
                    lambda ctx, params: _run(spec, ctx, params, synchronizing=False))


def ReplicateJobData(Input_Parent_Repository_URL: Any = None,
                     Input_Parent_Repository_Name: Any = None,
                     Input_Multi_Name: Any = None) -> Result:
    """Make every connected child a copy of the parent; export for disconnected ones."""
    return _replicate(REPLICATE, (Input_Parent_Repository_URL, Input_Parent_Repository_Name,
                                  Input_Multi_Name))


def CreateJobDataReplica(Input_Parent_Repository_URL: Any = None,
                         Input_Parent_Repository_Name: Any = None,
                         Input_Multi_Name: Any = None) -> Result:
    """Esri's older name of Replicate Job Data."""
    return _replicate(CREATE_REPLICA, (Input_Parent_Repository_URL,
                                       Input_Parent_Repository_Name, Input_Multi_Name))


def SynchronizeJobData(Input_Parent_Repository_URL: Any = None,
                       Input_Parent_Repository_Name: Any = None,
                       Input_Multi_Name: Any = None, *, dry_run: bool = False,
                       conflict_policy: Optional[str] = "newest") -> Result:
    """Consolidate the connected children's changes into the parent, then send the parent's
    changes to every connected child. ``dry_run`` and ``conflict_policy`` are wmx additions."""
    def body(ctx: ToolContext, params: dict[str, Any]) -> dict[str, str]:
        return _run(SYNCHRONIZE, ctx, params, synchronizing=True, dry_run=bool(dry_run),
                    policy=_policy(conflict_policy or "newest"))

    return run_tool(SYNCHRONIZE, (Input_Parent_Repository_URL, Input_Parent_Repository_Name,
                                  Input_Multi_Name), {}, body)
