"""What ``wmx status`` shows: who a repository is, its cluster, how much each child has
waiting, and the conflict log. Read-only; works over any backend."""

from __future__ import annotations

from typing import Optional

import attrs

from wmx.engine.feed import change_pages
from wmx.repository.base import ConflictRecord, NodeInfo, NodeRecord, Repository


@attrs.frozen
class NodeStatus:
    node: NodeRecord
    pending_to_child: Optional[int]
    """Parent changes the child has not received yet (None for the parent's own row)."""


@attrs.frozen
class StatusReport:
    info: NodeInfo
    nodes: list[NodeStatus]
    conflicts: list[ConflictRecord]


def count_changes(repository: Repository, since_seq: int, *,
                  exclude_origin: Optional[str] = None, page_size: int = 5000) -> int:
    return sum(len(page.changes) for page in change_pages(
        repository, since_seq, page_size=page_size, exclude_origin=exclude_origin))


def repository_status(repository: Repository) -> StatusReport:
    info = repository.info()
    nodes = []
    for node in repository.nodes():
        pending = None
        if not node.is_parent and node.is_connected:
            pending = count_changes(repository, node.push_seq, exclude_origin=node.node_id)
        nodes.append(NodeStatus(node, pending))
    return StatusReport(info, nodes, repository.conflicts())
