"""Rejoining a node that rebuilt itself from its server (SPEC §2.6: an Esri server whose
mirror went with the state folder).

Such a node holds what its server shows but not the cluster's memory of it: which GUID each
element has, which parent it is a replica of, which children it registered. Before anything
is exchanged it adopts the identities of the versions the other side of the pair holds, so
nothing it rebuilt arrives as a second copy; then the pair is registered again and recovers
as a pair restored from a backup does (``wmx.engine.synchronize``: both sides exchange
everything). A rebuilt child is taken back only by a parent that still has its registration,
and a rebuilt parent takes back only children that name it as their parent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Optional

from wmx.engine.cluster import Cluster
from wmx.engine.feed import change_pages
from wmx.engine.identity import Contact
from wmx.model.changes import Change
from wmx.model.locations import shown_location
from wmx.repository.base import NodeRecord, RebuiltNode, Repository

log = logging.getLogger("wmx.engine")


def rejoin(cluster: Cluster, contacts: list[Contact], *, page_size: int) -> dict[str, str]:
    """Let every rebuilt node of the run adopt the cluster's identities and registration;
    returns, per child that rejoined (by node id), what to tell the user.

    A rebuilt parent adopts from all its children first (it compares its server with
    anything only once, afterwards); then each rebuilt child adopts from the parent."""
    usable = [c for c in contacts if c.repository is not None and c.info is not None
              and c.error is None]
    notices: dict[str, str] = {}
    if cluster.info.rebuilt:
        for contact in usable:
            assert contact.info is not None
            if contact.info.parent_node_id == cluster.parent_id and \
                    contact.info.node_id not in cluster.nodes and \
                    _rejoin_parent(cluster, contact, page_size):
                notices[contact.info.node_id] = (
                    f"{cluster.info.name} had lost its record of the cluster (an Esri "
                    f"server's mirror, with the state folder): it was rebuilt from the server, "
                    f"{contact.target.name} registered again, its elements matched and every "
                    "change exchanged again")
        if isinstance(cluster.parent, RebuiltNode) and cluster.parent.info().rebuilt:
            cluster.parent.adopt((), since=None)  # no child to take identities from
        cluster.info = cluster.parent.info()
    for contact in usable:
        assert contact.info is not None
        if contact.info.rebuilt and _rejoin_child(cluster, contact, page_size):
            notices[contact.info.node_id] = (
                f"{contact.target.name} had lost its record of the cluster (an Esri server's "
                f"mirror, with the state folder): it was rebuilt from the server, its elements "
                f"were matched with {cluster.info.name}'s and every change exchanged again")
    for text in notices.values():
        log.warning("%s", text)
    return notices


def _versions(repository: Repository, page_size: int) -> Iterator[Change]:
    """Every version the repository holds, whatever its origin, up to its current head."""
    head = repository.info().seq
    for page in change_pages(repository, 0, page_size=page_size, until_seq=head):
        yield from page.changes


def _rejoin_child(cluster: Cluster, contact: Contact, page_size: int) -> bool:
    """A rebuilt child the parent still has a registration for takes it back."""
    assert contact.repository is not None and contact.info is not None
    node = cluster.nodes.get(contact.info.node_id)
    if node is None or node.is_parent or not isinstance(contact.repository, RebuiltNode):
        return False  # not a replica of this parent: refused as any stranger is
    since = node.last_sync or contact.target.last_sync_time
    contact.repository.adopt(_versions(cluster.parent, page_size), since=since,
                             parent_node_id=cluster.parent_id,
                             id_block_start=node.id_block_start)
    contact.info = contact.repository.info()
    return True


def _rejoin_parent(cluster: Cluster, contact: Contact, page_size: int) -> bool:
    """A child of a rebuilt parent: the parent adopts the child's identities and registers
    the child again, with the id block the child says it has."""
    assert contact.repository is not None and contact.info is not None
    if not isinstance(cluster.parent, RebuiltNode):
        return False
    since: Optional[datetime] = contact.target.last_sync_time
    position = cluster.parent.adopt(_versions(contact.repository, page_size), since=since)
    cluster.save(NodeRecord(node_id=contact.info.node_id, name=contact.target.name,
                            url=shown_location(contact.target.url), last_sync=since,
                            id_block_start=contact.info.id_block_start, push_seq=position))
    return True
