"""The one place where a repository or transport failure becomes what a tool reports: which
node failed (the parent or a child, by name and location), the documented code (and so the
exception class, see ``wmx.errors``), and whether the next run can help or what to do instead.

Tools hand the engine repositories wrapped by :func:`guard`, so that a failure of the parent is
told apart from a child's wherever in the run it happens. This module must never retry,
swallow a failure, or show anything but the backend's own (already secret-free) message text.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Callable, Optional

import attrs

from wmx.engine.cluster import NotAReplica, Opener
from wmx.engine.outcome import ChildOutcome
from wmx.errors import (
    CHILD_UNREACHABLE,
    INVALID_RESPONSE,
    NOT_A_REPLICA,
    NOT_AUTHORIZED,
    PARENT_UNREACHABLE,
    REPOSITORY_LOCKED,
    TIMED_OUT,
)
from wmx.model.locations import shown_location
from wmx.repository.base import (
    InvalidRequest,
    NotAuthorized,
    Repository,
    RepositoryBusy,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryReadOnly,
    RepositoryTimeout,
    RepositoryUnavailable,
)

PARENT, CHILD, REPOSITORY = "parent", "child", "repository"
"""Roles: the parent of a run, one of its children, or the one repository a tool works on."""


@attrs.frozen
class Node:
    """A repository taking part in a run, as messages name it."""

    role: str
    name: str
    location: str


@attrs.frozen
class Failure:
    """What went wrong at one node, decided once, reported as is."""

    code: int
    node: Node
    reason: str
    advice: str

    @property
    def text(self) -> str:
        return self.sentence("failed")

    def sentence(self, what: str) -> str:
        """``<node> <what>: <reason>. <advice>.`` — the one wording of every failure line."""
        who = f"{self.node.name} ({shown_location(self.node.location)})" if self.node.name \
            else "The repository"
        if self.node.role == PARENT:
            who = f"The parent {who}"
        return f"{who} {what}: {self.reason.rstrip('. ')}. {self.advice}."


class NodeFailure(RepositoryError):
    """A repository failure already attributed to one node; the engine handles it like any
    other RepositoryError (a child's part of the run fails, the others go on)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


@attrs.frozen
class _Kind:
    code: Optional[int]
    """None: the "cannot be reached" code of the node's role (999980 or 999981)."""
    advice: Optional[str]
    """None: a transient cause, which the next run can get past (the role's wording)."""


#: Most specific first: the first class an error is an instance of decides.
_KINDS: tuple[tuple[type[BaseException], _Kind], ...] = (
    (NotAReplica, _Kind(NOT_A_REPLICA, "Synchronizing it again will fail the same way")),
    (NotAuthorized, _Kind(NOT_AUTHORIZED,
                          "Set WMX_TOKEN to a valid token and act (WMX_USER) as a user with "
                          "the Manage Replication privilege or administrator access")),
    (RepositoryTimeout, _Kind(TIMED_OUT, None)),
    (RepositoryBusy, _Kind(REPOSITORY_LOCKED, None)),
    (RepositoryReadOnly, _Kind(None, "Make it writable for this process, then run again: "
                                     "until then every run fails the same way")),
    (RepositoryFull, _Kind(None, "Free space on its disk, then run again: until then "
                               "every run fails the same way")),
    (RepositoryUnavailable, _Kind(None, None)),
    (RepositoryNotFound, _Kind(None, "Check the URL or path: running again will fail the "
                                     "same way")),
    (InvalidRequest, _Kind(INVALID_RESPONSE, "What was exchanged was refused as invalid; "
                                             "running again will fail the same way until it "
                                             "is repaired")),
    (RepositoryError, _Kind(INVALID_RESPONSE, "Check that the location names a wmx repository "
                                              "or a WMServer service")),
    (OSError, _Kind(None, "Check that the folder exists and can be written")),
)
_UNREACHABLE = {PARENT: PARENT_UNREACHABLE, REPOSITORY: PARENT_UNREACHABLE,
                CHILD: CHILD_UNREACHABLE}
_NEXT_RUN = {CHILD: "Its checkpoint did not move: the next run catches it up",
             PARENT: "Nothing more was done; run again when it is back",
             REPOSITORY: "Run again when it is back"}
UNNAMED = Node(REPOSITORY, "", "")
"""Where a failure no tool attributed happened (the backend's message names the location)."""


def classify(error: BaseException, node: Node) -> Failure:
    """The failure ``error`` means at ``node`` (an already attributed one keeps its node)."""
    if isinstance(error, NodeFailure):
        return error.failure
    for kind_of, kind in _KINDS:
        if isinstance(error, kind_of):
            code = _UNREACHABLE[node.role] if kind.code is None else kind.code
            advice = _NEXT_RUN[node.role] if kind.advice is None else kind.advice
            return Failure(code, node, str(error), advice)
    raise TypeError(f"{type(error).__name__} is not a repository failure") from error


def child_failure(child: ChildOutcome) -> Failure:
    """Why a child's part of the run failed (possibly because the parent did)."""
    target = child.target
    cause = child.cause if child.cause is not None else RepositoryUnavailable(child.error or "")
    return classify(cause, Node(CHILD, target.name, target.url))


#: Calls whose InvalidRequest blames what was sent (the other node's data), not the store
#: that refused it: the engine then fails the sending child's part of the run.
_SENDER_BLAMED = frozenset({"apply", "load_rows"})


@contextlib.contextmanager
def _attributing(node: Node, call: str) -> Iterator[None]:
    """Raise a RepositoryError escaping the block as a NodeFailure of ``node``."""
    try:
        yield
    except RepositoryError as exc:
        if isinstance(exc, NodeFailure) or (isinstance(exc, InvalidRequest)
                                            and call in _SENDER_BLAMED):
            raise
        raise NodeFailure(classify(exc, node)) from exc


class _Guarded:
    """A repository whose failures name ``node`` (see :func:`guard`)."""

    def __init__(self, repository: Repository, node: Node, fail_fast: bool) -> None:
        self._repository = repository
        self._node = node
        self._fail_fast = fail_fast
        self._failed: Optional[NodeFailure] = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._repository, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = self.attributed(name, functools.partial(value, *args, **kwargs))
            if isinstance(result, contextlib.AbstractContextManager):
                return _AttributedContext(self, name, result)
            return result

        return call

    def attributed(self, name: str, function: Callable[..., Any], *args: Any,
                   ending: bool = False) -> Any:
        """``function(*args)``, its failures attributed to this node. After a failure of a
        fail-fast node only what ends something (``close``, a context's exit: ``ending``)
        still runs."""
        if self._failed is not None and not (ending or name == "close"):
            raise self._failed
        try:
            with _attributing(self._node, name):
                return function(*args)
        except NodeFailure as failure:
            if self._fail_fast and failure.failure.node == self._node:
                self._failed = failure
            raise


class _AttributedContext:
    """A context a guarded repository returned (a transaction): what its entry and its exit
    raise (a COMMIT on a full disk) is that repository's failure too; what the block itself
    raises passes as it is."""

    def __init__(self, guarded: _Guarded, name: str,
                 context: contextlib.AbstractContextManager[Any]) -> None:
        self._guarded, self._name, self._context = guarded, name, context

    def __enter__(self) -> Any:
        return self._guarded.attributed(self._name, self._context.__enter__)

    def __exit__(self, *exc: Any) -> Any:
        return self._guarded.attributed(self._name, self._context.__exit__, *exc, ending=True)


def guard(repository: Repository, node: Node, *, fail_fast: bool = False) -> Repository:
    """``repository`` with every failure of its calls attributed to ``node``; ``fail_fast``:
    after its first failure every call but ``close`` fails the same way at once (a parent
    that failed fails the run: waiting for it again for each further child is pointless)."""
    return _Guarded(repository, node, fail_fast)


def guarded_opener(open_location: Opener, names: dict[str, str]) -> Opener:
    """The engine's child opener, attributing each child's failures (its opening included)
    to that child; ``names`` gives a location's name in the value table."""
    def open_child(location: str) -> Repository:
        node = Node(CHILD, names.get(location, location), location)
        with _attributing(node, "open"):
            return guard(open_location(location), node)

    return open_child
