"""``wmx`` commands that run the geoprocessing tools or set a repository up: init, serve,
replicate, sync, export, import, clear, run, demo, bench.

Each parses its arguments and calls the same tool or library function a Python script would;
the tool's messages are printed as the tool writes them. Nothing here holds replication logic.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable

from wmx.cli.output import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    INTERRUPTED_CHECKPOINTED,
    INTERRUPTED_COPYING,
    INTERRUPTED_CREATING,
    INTERRUPTED_EXPORTING,
    INTERRUPTED_SCRIPT,
    CommandError,
    Output,
)
from wmx.errors import ExecuteError
from wmx.messages import listening
from wmx.result import Result

CHILDREN_HELP = {
    "replicate": "value table, one row per child: 'NAME CONNECTED URL', rows separated by ';' "
                 "(CONNECTED is true, or false for a disconnected child whose URL is a folder)",
    "sync": "value table, one row per child: 'NAME CONNECTED URL [LAST_SYNC_TIME]', rows "
            "separated by ';' (the Output_LastSync of the previous run fits as it is)",
}


def result_data(result: Result) -> dict[str, Any]:
    """A tool's Result for --json: its status, outputs in order and per-child rows."""
    return {"tool": result.tool_name, "status": result.status_code,
            "outputs": [result.getOutput(i) for i in range(result.outputCount)],
            "children": result.to_rows()}


def run_tool(out: Output, call: Callable[[], Result]) -> int:
    """Run a tool with its messages printed as they are written; 3 if children failed."""
    try:
        with listening(out.message):
            result = call()
    except ExecuteError as error:
        if error.result is not None:
            out.data = result_data(error.result)
        raise CommandError(error.code, str(error), shown=True) from None
    out.data = result_data(result)
    return EXIT_PARTIAL if result.status_code else EXIT_OK


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    from wmx.repository import RepositoryError, RepositoryUnavailable
    from wmx.repository.setup import initialise

    if args.path.lower().startswith(("postgresql://", "postgres://")):
        return _init_postgres(args, out)
    path = Path(args.path)
    existed = path.exists()
    try:
        repository = initialise(path, name=args.name, config=args.config,
                                job_id_start=args.job_id_start)
    except (RepositoryUnavailable, OSError, sqlite3.Error) as exc:
        if not existed:
            _remove_partial(path)
        text = str(exc) if isinstance(exc, RepositoryUnavailable) else \
            f"Cannot create {path}: {exc}"
        raise CommandError(None, f"{text}; {_why_not_writable(path)}") from None
    except (RepositoryError, ValueError) as exc:
        raise CommandError(None, str(exc)) from None
    except KeyboardInterrupt:
        if not existed:
            _remove_partial(path)
        raise
    with repository:
        info = repository.info()
    out.data = {"path": str(path), "name": info.name, "config": args.config,
                "node_id": info.node_id, "job_id_start": info.id_block_start}
    out.info(f"Created repository {info.name} at {path} ({args.config} configuration, "
             f"job ids from {info.id_block_start})")
    return EXIT_OK


def _init_postgres(args: argparse.Namespace, out: Output) -> int:
    """``wmx init postgresql://…``: the schema is created in one transaction (nothing is left
    of a failed one); messages name the location without its password."""
    from wmx.repository import RepositoryError
    from wmx.repository.setup import initialise

    try:
        repository = initialise(args.path, name=args.name, config=args.config,
                                job_id_start=args.job_id_start)
    except (RepositoryError, ValueError) as exc:
        raise CommandError(None, str(exc)) from None
    with repository:
        info = repository.info()
        location = repository.location
    out.data = {"path": location, "name": info.name, "config": args.config,
                "node_id": info.node_id, "job_id_start": info.id_block_start}
    out.info(f"Created repository {info.name} at {location} ({args.config} configuration, "
             f"job ids from {info.id_block_start})")
    return EXIT_OK


def _why_not_writable(path: Path) -> str:
    """The cause in a user's terms: a file where a folder should be, or a folder that is
    read-only (or cannot be made)."""
    folder = path.parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is a file, not a folder"
            if ancestor == folder:
                return f"the folder {folder} is read-only or not writable by you"
            return f"the folder {folder} cannot be created in {ancestor} (read-only?)"
    return "no part of that path exists"


def _remove_partial(path: Path) -> None:
    """Leave nothing behind after a failed create (the database and its WAL files)."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            continue


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    from wmx.server.run import serve

    serve(args.path, host=args.host, port=args.port, service=args.service,
          token_file=args.token_file)
    return EXIT_OK


def _present_token_file(args: argparse.Namespace) -> None:
    """``--token-file``: the token every service of the run is asked with, as ``WMX_TOKEN``
    gives it (the file, unlike the variable, can be readable by one account only)."""
    from wmx.tokens import read_token_file
    from wmx.tools.connect import TOKEN_VARIABLE

    if args.token_file is not None:
        try:
            os.environ[TOKEN_VARIABLE] = read_token_file(args.token_file)
        except ValueError as exc:
            raise CommandError(None, str(exc)) from None


def cmd_replicate(args: argparse.Namespace, out: Output) -> int:
    from wmx.tools import ReplicateJobData

    _present_token_file(args)
    return run_tool(out, lambda: ReplicateJobData(args.parent, args.name, args.children))


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    from wmx.tools import SynchronizeJobData

    _present_token_file(args)
    return run_tool(out, lambda: SynchronizeJobData(
        args.parent, args.name, args.children, dry_run=args.dry_run, conflict_policy=args.policy))


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from wmx.tools import ExportJobData

    return run_tool(out, lambda: ExportJobData(args.folder, args.location, args.name,
                                               args.since, args.until))


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from wmx.tools import ImportJobData

    return run_tool(out, lambda: ImportJobData(args.file, args.merge, args.location, args.name))


def cmd_clear(args: argparse.Namespace, out: Output) -> int:
    from wmx.tools import ClearJobReplicationInfo

    return run_tool(out, lambda: ClearJobReplicationInfo(args.location))


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    """Run a legacy arcpy script unchanged, supplying wmx as ``arcpy`` if arcpy is absent."""
    from wmx.script import run_script

    return run_script(args.script, args.script_args)


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from wmx.demo import run_demo

    try:
        converged = run_demo(args.folder, out=out.line)
    except FileExistsError as exc:
        raise CommandError(None, str(exc), exit_code=EXIT_USAGE) from None
    out.data = {"converged": converged}
    if not converged:
        raise CommandError(None, "the demo repositories did not converge")
    return EXIT_OK


def cmd_bench(argv: list[str]) -> int:
    """Everything after ``bench`` goes to the benchmark as it is (``wmx bench --smoke``)."""
    from wmx.bench import main as bench_main

    return bench_main(argv)


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add these commands; ``command(name, handler, help, example, interrupted)``."""
    sub = command("init", cmd_init, "create a repository file (or a PostgreSQL schema)",
                  "wmx init redlands.wmxdb --name Redlands --config quick", INTERRUPTED_CREATING)
    sub.add_argument("path", help="the new repository file (must not exist), or a "
                                  "postgresql://…/dbname?schema=NAME location")
    sub.add_argument("--name", required=True, help="the repository's name (as value tables "
                                                   "and messages name it)")
    sub.add_argument("--config", choices=("minimum", "quick"), default="minimum",
                     help="starting configuration: Esri's minimum, or quick (adds job types, "
                          "hold types, users and groups to try things with); default minimum")
    sub.add_argument("--job-id-start", type=int, default=1, metavar="N",
                     help="first job id of this repository (default 1)")

    sub = command("serve", cmd_serve, "publish a repository as a WMServer REST service",
                  "wmx serve redlands.wmxdb --port 8080 --token-file token.txt")
    sub.add_argument("path", help="the repository file to serve")
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only)")
    sub.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    sub.add_argument("--service", help="service name in the URL (default: the repository's name)")
    sub.add_argument("--token-file", metavar="FILE",
                     help="file holding the token every request must carry")

    sub = command("replicate", cmd_replicate,
                  "ReplicateJobData: make every child a copy of the parent",
                  "wmx replicate redlands.wmxdb Redlands \"Ohio true ohio.wmxdb;Arizona true "
                  "http://az:8080/arcgis/rest/services/Arizona/WMServer\"", INTERRUPTED_COPYING)
    _cluster_arguments(sub, "replicate")

    sub = command("sync", cmd_sync,
                  "SynchronizeJobData: two-way sync of the parent and its children",
                  "wmx sync redlands.wmxdb Redlands \"Ohio true ohio.wmxdb 2011-08-08 12:00;"
                  "Arizona true arizona.wmxdb\" --policy newest", INTERRUPTED_CHECKPOINTED)
    _cluster_arguments(sub, "sync")
    sub.add_argument("--dry-run", action="store_true",
                     help="report what a real run would do and write nothing")
    sub.add_argument("--policy", choices=("newest", "parent", "child"), default="newest",
                     help="who wins a conflict: the newest change (default), the parent or "
                          "the child")

    sub = command("export", cmd_export,
                  "ExportJobData: write a .jxl exchange file for a disconnected child",
                  "wmx export outbox/ redlands.wmxdb --since \"2026-11-01 00:00\"",
                  INTERRUPTED_EXPORTING)
    sub.add_argument("folder", help="folder that receives the .jxl file")
    sub.add_argument("location", help="repository path or WMServer URL to export")
    sub.add_argument("--name", help="the repository's name, checked before anything is read")
    sub.add_argument("--since", metavar="TIME",
                     help="only changes made at or after this time (default: everything)")
    sub.add_argument("--until", metavar="TIME", help="only changes made before this time")

    sub = command("import", cmd_import, "ImportJobData: load a .jxl exchange file",
                  "wmx import inbox/Redlands_20261201.jxl ohio.wmxdb --merge COMBINE")
    sub.add_argument("file", help="the .jxl file to load")
    sub.add_argument("location", help="repository path or WMServer URL to load it into")
    sub.add_argument("--merge", choices=("COMBINE", "REPLACE"), default="COMBINE",
                     help="COMBINE merges (newest wins, default); REPLACE swaps the contents "
                          "for the file's, atomically")
    sub.add_argument("--name", help="the repository's name, checked before anything is written")

    sub = command("clear", cmd_clear,
                  "ClearJobReplicationInfo: forget the cluster (children and checkpoints)",
                  "wmx clear redlands.wmxdb")
    sub.add_argument("location", help="repository path or WMServer URL")

    sub = command("run", cmd_run, "run a legacy arcpy script with wmx standing in for arcpy",
                  "wmx run nightly_sync.py C:\\data\\redlands.wmxdb", INTERRUPTED_SCRIPT)
    sub.add_argument("script", help="the Python script")
    sub.add_argument("script_args", nargs=argparse.REMAINDER,
                     help="arguments handed to the script as sys.argv[1:]")

    sub = command("demo", cmd_demo, "a parent and two children, edited, replicated, synced",
                  "wmx demo ./demo")
    sub.add_argument("folder", nargs="?", type=Path,
                     help="an empty folder for the three repositories (default: a new "
                          "temporary folder)")

    sub = command("bench", None, "the benchmark; every argument goes to python -m wmx.bench",
                  "wmx bench --smoke")
    sub.add_argument("bench_args", nargs=argparse.REMAINDER,
                     help="the benchmark's own options (wmx bench --help lists them)")


def _cluster_arguments(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument("parent", help="parent repository: a file path or a WMServer URL")
    sub.add_argument("name", help="the parent repository's name")
    sub.add_argument("children", metavar="CHILDREN", help=CHILDREN_HELP[command])
    sub.add_argument("--token-file", metavar="FILE",
                     help="file holding the token for the run's secured services (instead "
                          "of WMX_TOKEN)")
