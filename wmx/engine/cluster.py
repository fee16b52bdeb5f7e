"""The parent's view of its cluster: its own identity, the registered children, their id
blocks and checkpoints (Esri's JTX_REPLICATION_INFO).

Both replicate and synchronize start here; this is the only engine module that writes
replication info, and it never touches element data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Optional

from wmx.engine.outcome import ChildTarget
from wmx.model.locations import shown_location
from wmx.model.records import ID_BLOCK_SIZE
from wmx.repository.base import NodeInfo, NodeRecord, Repository, RepositoryError

Opener = Callable[[str], Repository]
"""Opens a repository location (injected by the caller: the engine knows no backend)."""


class NotAReplica(RepositoryError):
    """The child is not (or no longer) a replica of this parent."""


class Cluster:
    def __init__(self, parent: Repository, *, location: str = "") -> None:
        self.parent = parent
        self.info = parent.info()
        self.location = location or parent.location
        self.nodes: dict[str, NodeRecord] = {n.node_id: n for n in parent.nodes()}
        self.handed_out: set[int] = set()

    @property
    def parent_id(self) -> str:
        return self.info.node_id

    def ensure_parent_node(self) -> None:
        """Record the parent itself as the cluster's parent node (shown by replication/info)."""
        existing = self.nodes.get(self.parent_id)
        if existing is None or not existing.is_parent:
            node = NodeRecord(node_id=self.parent_id, name=self.info.name, url=self.location,
                              is_parent=True, id_block_start=self.info.id_block_start,
                              incarnation=self.info.incarnation)
            self.parent.save_node(node)
            self.nodes[node.node_id] = node

    def allocate_block(self) -> int:
        """The lowest id block no node of the cluster uses yet, and that this run has not
        handed out already (a block stays taken even if recording its node then failed, or
        succeeded without the parent's reply arriving)."""
        used = {node.id_block_start for node in self.nodes.values()} | self.handed_out
        used.add(self.info.id_block_start)
        step = 1
        while self.info.id_block_start + step * ID_BLOCK_SIZE in used:
            step += 1
        block = self.info.id_block_start + step * ID_BLOCK_SIZE
        self.handed_out.add(block)
        return block

    def is_replica(self, child: NodeInfo) -> bool:
        """Whether the child is a registered replica made from this parent."""
        node = self.nodes.get(child.node_id)
        return node is not None and not node.is_parent and \
            child.parent_node_id == self.parent_id

    def registered(self, child: NodeInfo, target: ChildTarget) -> tuple[NodeRecord, bool]:
        """The child's record, checked: it must be a replica made from this parent; and
        whether the pair must recover (see :func:`must_recover`)."""
        if not self.is_replica(child):
            raise NotAReplica(
                f"{target.name} is not a replica of {self.info.name}: run ReplicateJobData "
                "for it first")
        node = self.nodes[child.node_id]
        recovering = must_recover(node, child)
        if recovering:
            node.pull_seq, node.push_seq = 0, 0
        node.name, node.url = target.name, shown_location(target.url)
        return node, recovering

    def save(self, node: NodeRecord, *, last_sync: Optional[datetime] = None) -> None:
        if last_sync is not None:
            node.last_sync = last_sync
        self.parent.save_node(node)
        self.nodes[node.node_id] = node


def must_recover(node: NodeRecord, child: NodeInfo) -> bool:
    """Whether the parent's record and the child disagree about their last exchange.

    The parent records the child's incarnation after every replicate and sync, and the child
    renews it at the end of each sync. A child restored from a backup (or a copy of it put in
    its place) shows an older incarnation; a parent restored from a backup holds older
    records; either way the checkpoints of the pair mean nothing any more, and both sides
    exchange everything again (idempotent, so only time is lost)."""
    return node.incarnation != child.incarnation or child.seq < node.pull_seq
