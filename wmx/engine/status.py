"""What ``wmx status`` and ``wmx conflicts`` show: who a repository is, its cluster, how much
each child has waiting, and the conflict log, with every node named as the cluster knows it.

Read-only; works over any backend. It must never write, and never show a node id where a
name is known.
"""

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

    @property
    def children(self) -> list[NodeStatus]:
        """The cluster members other than this repository itself."""
        return [entry for entry in self.nodes if entry.node.node_id != self.info.node_id]

    def knows(self, node_id: str) -> bool:
        """Whether this repository knows that node's name (a child does not know its
        parent's: only the parent keeps the cluster's records)."""
        return node_id == self.info.node_id or any(
            entry.node.node_id == node_id for entry in self.nodes)

    def name_of(self, node_id: Optional[str]) -> str:
        """A node's name as this repository knows it; an unknown node by a short id."""
        if not node_id:
            return "(none)"
        if node_id == self.info.node_id:
            return self.info.name
        return next((entry.node.name for entry in self.nodes if entry.node.node_id == node_id),
                    f"node {node_id[:8]}")


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
