"""Clear Job Replication Information: forget the cluster on the parent and on every child
it can reach (Esri calls a web service on each child for the same purpose).

Run on a copy of the parent (a backup, a byte copy), it must not break the real cluster: a
child is cleared only while it is still the replica this repository recorded, and none is
cleared while the original parent still answers where the cluster knows it. Every node
cleared, or left alone, is named with its location."""

from __future__ import annotations

from typing import Any, Optional

from wmx.engine.identity import one_store
from wmx.model.locations import shown_location
from wmx.repository import Repository, RepositoryError
from wmx.repository.base import NodeInfo, NodeRecord
from wmx.result import Result
from wmx.tools._base import Parameter, ToolContext, ToolSpec, run_tool
from wmx.tools.connect import open_checked, open_location
from wmx.tools.failures import CHILD, Node, classify

CLEAR = ToolSpec("ClearJobReplicationInfo", "Clear Job Replication Information", (
    Parameter("Input_Repository_URL", "Repository URL", "String"),
    Parameter("Input_DatabasePath", "Input Database Path", "File", required=False),
    Parameter("Output_Status", "Clear Replication Status", "Long", "Output", False)))


def _clear(ctx: ToolContext, params: dict[str, Any]) -> dict[str, str]:
    location = str(params["Input_DatabasePath"] or params["Input_Repository_URL"])
    repository = open_checked(location, "Repository URL")
    try:
        info = repository.info()
        nodes = repository.nodes()
        original = _original_elsewhere(repository, info, nodes, location)
        repository.clear_replication_info()
    finally:
        repository.close()
    ctx.add_message(f"Cleared the replication information of {info.name} "
                    f"({shown_location(location)})")
    failures = 0
    for node in nodes:
        if node.node_id == info.node_id or node.is_parent or not node.is_connected:
            continue
        if original is not None:
            ctx.add_warning(f"{node.name} ({node.url}) was not cleared: "
                            f"{shown_location(location)} is a copy of "
                            f"{info.name}, whose original at {original} still holds the "
                            "cluster; clear that one to forget the cluster")
            continue
        try:
            failures += not _clear_child(ctx, node, info)
        except RepositoryError as exc:
            failures += 1
            failure = classify(exc, Node(CHILD, node.name, node.url))
            ctx.add_warning(failure.sentence("was not cleared"), failure.code)
    if failures:
        ctx.mark_incomplete()
    return {"Output_Status": str(failures)}


def _original_elsewhere(repository: Repository, info: NodeInfo, nodes: list[NodeRecord],
                        location: str) -> Optional[str]:
    """The location of the repository this one is a copy of, when the original still answers
    where the cluster recorded its parent (then clearing the children would break the real
    cluster); None when this repository is the one the cluster knows."""
    recorded = next((n.url for n in nodes if n.node_id == info.node_id and n.is_parent), "")
    if not recorded or recorded == location:
        return None
    try:
        other = open_location(recorded)
    except RepositoryError:
        return None  # the recorded place is gone: this repository is the parent now
    try:
        if other.info().node_id != info.node_id or one_store(repository, other):
            return None
        return recorded
    except RepositoryError:
        return None
    finally:
        other.close()


def _clear_child(ctx: ToolContext, node: NodeRecord, parent: NodeInfo) -> bool:
    """Clear one child if it is still the replica this repository recorded; say why not."""
    child = open_location(node.url)
    try:
        current = child.info()
        if current.parent_node_id != parent.node_id:
            ctx.add_warning(f"{node.name} ({node.url}) was not cleared: it is not a replica of "
                            f"{parent.name} (any more)")
            return False
        if current.incarnation != node.incarnation:
            ctx.add_warning(f"{node.name} ({node.url}) was not cleared: it synchronized with "
                            f"another copy of {parent.name} after this one recorded it (this "
                            "repository may be a copy or a restored backup)")
            return False
        child.clear_replication_info()
    finally:
        child.close()
    ctx.add_message(f"Cleared the replication information of {node.name} ({node.url})")
    return True


def ClearJobReplicationInfo(Input_Repository_URL: Any = None,
                            Input_DatabasePath: Any = None) -> Result:
    return run_tool(CLEAR, (Input_Repository_URL, Input_DatabasePath), {}, _clear)
