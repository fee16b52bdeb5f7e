"""The job-tracking and store interfaces are declared, documented and sufficient: every method
of the Protocols states its contract, each store offers every member with the declared
parameters, and ``wmx serve`` runs on a store seen through ServedRepository alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.http_helpers import ADMIN, Client, make_repository
from wmx import arcpy
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.jobs import ElementReads, JobOperations, JobStore, ServedRepository
from wmx.server.run import ServerThread
from wmx.store.postgres import PostgresRepository

DECLARED_HERE = (ElementReads, JobStore, JobOperations, ServedRepository)
SERVER_FOLDER = Path(__file__).resolve().parent.parent / "wmx" / "server"
CONCRETE_STORES = {"wmx.repository.embedded", "wmx.store.postgres"}


def _protocols(protocol: type) -> list[type]:
    """``protocol`` and the Protocols it extends (not Protocol, Generic or object)."""
    return [cls for cls in protocol.__mro__
            if getattr(cls, "_is_protocol", False) and cls is not Protocol]


def _methods(protocol: type) -> dict[str, Any]:
    """The methods (and properties) a Protocol declares, its bases' included."""
    found: dict[str, Any] = {}
    for cls in reversed(_protocols(protocol)):
        found.update({name: value for name, value in vars(cls).items()
                      if not name.startswith("_")
                      and (callable(value) or isinstance(value, property))})
    return found


def _members(protocol: type) -> set[str]:
    """Every name an implementation must offer: methods and declared attributes."""
    names = set(_methods(protocol))
    for cls in _protocols(protocol):
        names.update(name for name in getattr(cls, "__annotations__", {})
                     if not name.startswith("_"))
    return names


def _mismatches(declared: Any, offered: Any) -> list[str]:
    """How ``offered`` fails to accept every call ``declared`` allows (names, kinds, defaults);
    parameters it adds must have defaults."""
    wanted = inspect.signature(declared).parameters
    given = inspect.signature(offered).parameters
    problems = []
    for name, parameter in wanted.items():
        other = given.get(name)
        if other is None:
            problems.append(f"no parameter {name}")
        elif other.kind != parameter.kind:
            problems.append(f"{name} is {other.kind.description}, not "
                            f"{parameter.kind.description}")
        elif parameter.default is not parameter.empty and other.default != parameter.default:
            problems.append(f"{name} defaults to {other.default!r}, not {parameter.default!r}")
    problems += [f"extra parameter {name} without a default" for name, other in given.items()
                 if name not in wanted and other.default is inspect.Parameter.empty
                 and other.kind not in (other.VAR_POSITIONAL, other.VAR_KEYWORD)]
    return problems


@pytest.mark.parametrize("protocol", DECLARED_HERE, ids=lambda p: p.__name__)
def test_every_method_of_the_store_and_job_tracking_interfaces_states_its_contract(
        protocol: type) -> None:
    undocumented = [name for name, method in vars(protocol).items()
                    if not name.startswith("_") and callable(method)
                    and not (inspect.getdoc(method) or "").strip()]
    assert not undocumented, f"{protocol.__name__}: {undocumented} say nothing they promise"
    assert (protocol.__doc__ or "").strip()


@pytest.mark.parametrize("store", [EmbeddedRepository, PostgresRepository],
                         ids=lambda s: s.__name__)
@pytest.mark.parametrize("protocol", [JobStore, ServedRepository], ids=lambda p: p.__name__)
def test_each_store_offers_every_member_of_the_interfaces_with_the_declared_parameters(
        store: type, protocol: type) -> None:
    missing = sorted(name for name in _members(protocol) - {"location"}
                     if not hasattr(store, name))
    assert not missing, f"{store.__name__} lacks {missing}"
    wrong = {name: problems for name, declared in _methods(protocol).items()
             if callable(declared) and not isinstance(declared, property)
             for problems in [_mismatches(declared, getattr(store, name))] if problems}
    assert not wrong, f"{store.__name__} differs from {protocol.__name__}: {wrong}"


def test_no_server_module_imports_a_concrete_store() -> None:
    """The server is typed against ServedRepository; the store is opened by open_store."""
    imports = []
    for source in sorted(SERVER_FOLDER.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            imports += [(source.name, module) for module in modules if module in CONCRETE_STORES]
    assert not imports


class OnlyServed:
    """A store seen through :class:`ServedRepository` alone: any other name is refused, so a
    server call outside the declared interface fails the request that makes it."""

    def __init__(self, store: EmbeddedRepository) -> None:
        self._store = store
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in SERVED:
            self.refused.append(name)
            raise AttributeError(f"{name} is not part of ServedRepository")
        return getattr(self._store, name)


SERVED = _members(ServedRepository)


def test_wmx_serve_replicates_synchronizes_and_edits_through_the_served_interface_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMX_USER", ADMIN)
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    with EmbeddedRepository(make_repository(tmp_path, "Redlands")) as parent_store, \
            EmbeddedRepository(make_repository(tmp_path, "Ohio", "minimum")) as child_store:
        parent, child = OnlyServed(parent_store), OnlyServed(child_store)
        with ServerThread(parent) as parent_server, ServerThread(child) as child_server:
            table = f"Ohio true {child_server.url}"
            assert arcpy.ReplicateJobData(parent_server.url, "Redlands", table
                                          ).getOutput(0) == "0"
            created = Client(child_server.url).post("jobs/create", user=ADMIN, jobTypeId=1,
                                                    numJobs=2)["jobIds"]
            closed = Client(child_server.url).post(
                "jobs/close", user=ADMIN, jobs=",".join(map(str, created)))
            synced = arcpy.SynchronizeJobData(parent_server.url, "Redlands", table)
            shown = Client(parent_server.url).get(f"jobs/{created[0]}")

            assert closed == {"success": True}
            assert synced.getOutput(0) == "0"
            assert (shown["id"], shown["childJobIds"]) == (created[0], [])
            assert [parent_store.get_job(job).stage for job in created] == [5, 5]
            assert parent.refused == child.refused == []
