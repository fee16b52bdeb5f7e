"""Who is who in a run: the children a value table names, opened once and told apart by their
node identity, never by the text of their locations (SPEC §2.3).

Two locations that carry one node id are one store reached two ways (another spelling of a
URL, ``localhost`` for ``127.0.0.1``, a link, a second path) or two copies of one repository
(a byte copy, a restored backup). A child that is the parent, or two rows that are one child,
are refused before the run writes anything. A byte copy of the parent may be replicated into:
that is how a copy becomes a node of its own.

This module opens and reads; the only thing it ever writes is the parent's incarnation
(node-local, never replicated), and only when a child carries the parent's node id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import attrs

from wmx.engine.cluster import Opener
from wmx.engine.outcome import ChildTarget
from wmx.model.locations import shown_location
from wmx.repository.base import NodeInfo, Repository, RepositoryError


class SameRepository(RepositoryError):
    """Two rows of a run name one repository, or a child is the parent (or a copy of it that
    cannot take part as it is). Raised before anything is written."""

    def __init__(self, message: str, *, same_as_parent: bool) -> None:
        super().__init__(message)
        self.same_as_parent = same_as_parent


@attrs.define
class Contact:
    """A connected child as first reached: open, with its identity, or the reason it is not."""

    target: ChildTarget
    repository: Optional[Repository] = None
    info: Optional[NodeInfo] = None
    error: Optional[RepositoryError] = None
    copy_of_parent: bool = False
    """The child is a byte copy of the parent (only a replicate may take it)."""


class Contacts:
    """The run's children, opened once; closing the set closes every one of them."""

    def __init__(self, contacts: list[Contact]) -> None:
        self.contacts = contacts

    def __iter__(self) -> Iterator[Contact]:
        return iter(self.contacts)

    def __enter__(self) -> Contacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for contact in self.contacts:
            if contact.repository is not None:
                contact.repository.close()
                contact.repository = None


def contact_children(parent: Repository, parent_info: NodeInfo, targets: list[ChildTarget],
                     open_child: Opener, *, replicating: bool) -> Contacts:
    """Open every connected child and check that each is a repository of its own.

    A child that cannot be opened is not an error here (the run reports it as that child's
    failure); one that is the parent, or the same as another row, raises
    :class:`SameRepository` and leaves nothing open."""
    contacts = Contacts([Contact(target) for target in targets])
    try:
        for contact in contacts:
            if contact.target.connected:
                _reach(contact, open_child)
        _tell_apart(parent, parent_info, contacts, replicating=replicating)
    except BaseException:
        contacts.close()
        raise
    return contacts


def _reach(contact: Contact, open_child: Opener) -> None:
    try:
        contact.repository = open_child(contact.target.url)
        contact.info = contact.repository.info()
    except RepositoryError as exc:
        contact.error = exc
        if contact.repository is not None:
            contact.repository.close()
            contact.repository = None


def _describe(target: ChildTarget) -> str:
    return f"{target.name} ({shown_location(target.url)})"


def _tell_apart(parent: Repository, parent_info: NodeInfo, contacts: Contacts, *,
                replicating: bool) -> None:
    seen: dict[str, Contact] = {}
    for contact in contacts:
        if contact.info is None or contact.repository is None:
            continue
        node_id = contact.info.node_id
        if node_id == parent_info.node_id:
            if one_store(parent, contact.repository):
                raise SameRepository(
                    f"{_describe(contact.target)} is the parent repository {parent_info.name} "
                    "under another name", same_as_parent=True)
            if not replicating:
                raise SameRepository(
                    f"{_describe(contact.target)} is a copy of the parent repository "
                    f"{parent_info.name}, not a replica of it: ReplicateJobData makes it a "
                    "node of its own", same_as_parent=True)
            contact.copy_of_parent = True
        first = seen.setdefault(node_id, contact)
        if first is not contact:
            raise SameRepository(
                f"{_describe(contact.target)} and {_describe(first.target)} are one "
                "repository (or copies of one): list each child once", same_as_parent=False)


def one_store(reference: Repository, other: Repository) -> bool:
    """Whether two open repositories with one node id are one store: renew the incarnation
    through the first and see whether the second reads it."""
    mark = reference.renew_incarnation()
    return other.info().incarnation == mark
