"""Clear Job Replication Information: forget the cluster on the parent and on every child
it can reach (Esri calls a web service on each child for the same purpose)."""

from __future__ import annotations

from typing import Any

from wmx.errors import CHILD_UNREACHABLE
from wmx.repository import RepositoryError
from wmx.result import Result
from wmx.tools._base import Parameter, ToolContext, ToolSpec, run_tool
from wmx.tools.connect import open_checked, open_location

CLEAR = ToolSpec("ClearJobReplicationInfo", "Clear Job Replication Information", (
    Parameter("Input_Repository_URL", "Repository URL", "String"),
    Parameter("Input_DatabasePath", "Input Database Path", "File", required=False),
    Parameter("Output_Status", "Clear Replication Status", "Long", "Output", False)))


def _clear(ctx: ToolContext, params: dict[str, Any]) -> dict[str, str]:
    location = str(params["Input_DatabasePath"] or params["Input_Repository_URL"])
    repository = open_checked(location, "Repository URL")
    try:
        own_id = repository.info().node_id
        children = [n for n in repository.nodes() if n.node_id != own_id and n.is_connected]
        repository.clear_replication_info()
    finally:
        repository.close()
    ctx.add_message(f"Cleared the replication information of {location}")
    failures = 0
    for node in children:
        try:
            child = open_location(node.url)
            try:
                child.clear_replication_info()
            finally:
                child.close()
            ctx.add_message(f"Cleared the replication information of {node.name}")
        except RepositoryError as exc:
            failures += 1
            ctx.add_warning(f"{node.name} ({node.url}): {exc}", CHILD_UNREACHABLE)
    return {"Output_Status": str(failures)}


def ClearJobReplicationInfo(Input_Repository_URL: Any = None,
                            Input_DatabasePath: Any = None) -> Result:
    return run_tool(CLEAR, (Input_Repository_URL, Input_DatabasePath), {}, _clear)
