"""The ``wmx`` command line: init, serve, replicate, sync, export, import, clear, status, run,
demo and bench.

Each command parses its arguments and calls the same tool or library function a Python script
would; none holds logic of its own. Exit codes: 0 success, 1 a tool error (the ERROR text is
printed), 2 bad command-line usage, 3 a run that finished with failed children.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from wmx.errors import ExecuteError
from wmx.result import Result

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

log = logging.getLogger("wmx.cli")


def _configure_logging(verbose: bool) -> None:
    """Progress goes to stderr when it is a terminal (or with -v); never into piped output."""
    level = logging.INFO if verbose or sys.stderr.isatty() else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


def _print_result(result: Result) -> int:
    print(result.getMessages())
    status = result.status_code
    return EXIT_OK if not status else EXIT_PARTIAL


def _tool(call) -> int:
    try:
        return _print_result(call())
    except ExecuteError as error:
        print(str(error), file=sys.stderr)
        return EXIT_ERROR


def cmd_init(args: argparse.Namespace) -> int:
    from wmx.repository import RepositoryError
    from wmx.repository.setup import initialise

    try:
        repository = initialise(args.path, name=args.name, config=args.config,
                                job_id_start=args.job_id_start)
    except (RepositoryError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with repository:
        info = repository.info()
    print(f"Created repository {info.name} at {args.path} ({args.config} configuration, "
          f"job ids from {info.id_block_start})")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from wmx.server.run import serve

    serve(args.path, host=args.host, port=args.port, service=args.service,
          token_file=args.token_file)
    return EXIT_OK


def cmd_replicate(args: argparse.Namespace) -> int:
    from wmx.tools import ReplicateJobData

    return _tool(lambda: ReplicateJobData(args.parent, args.name, args.children))


def cmd_sync(args: argparse.Namespace) -> int:
    from wmx.tools import SynchronizeJobData

    return _tool(lambda: SynchronizeJobData(args.parent, args.name, args.children,
                                            dry_run=args.dry_run, conflict_policy=args.policy))


def cmd_export(args: argparse.Namespace) -> int:
    from wmx.tools import ExportJobData

    return _tool(lambda: ExportJobData(args.folder, args.location, args.name, args.since,
                                       args.until))


def cmd_import(args: argparse.Namespace) -> int:
    from wmx.tools import ImportJobData

    return _tool(lambda: ImportJobData(args.file, args.merge, args.location, args.name))


def cmd_clear(args: argparse.Namespace) -> int:
    from wmx.tools import ClearJobReplicationInfo

    return _tool(lambda: ClearJobReplicationInfo(args.location))


def cmd_status(args: argparse.Namespace) -> int:
    from wmx.engine.status import repository_status
    from wmx.model.clock import stamp_datetime
    from wmx.repository import RepositoryError
    from wmx.tools.connect import open_location
    from wmx.valuetable import format_time

    try:
        repository = open_location(args.location)
        try:
            report = repository_status(repository)
        finally:
            repository.close()
    except RepositoryError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_ERROR
    info = report.info
    print(f"Repository   {info.name}")
    print(f"Node id      {info.node_id}")
    print(f"Change log   {info.seq} (incarnation {info.incarnation})")
    print(f"Job ids from {info.id_block_start}")
    print(f"Parent       {info.parent_node_id or '(none: this repository is not a child)'}")
    if report.nodes:
        print("Cluster nodes:")
        for entry in report.nodes:
            node = entry.node
            role = "parent" if node.is_parent else \
                ("child" if node.is_connected else "disconnected child")
            when = format_time(node.last_sync) if node.last_sync else "never"
            pending = "" if entry.pending_to_child is None else \
                f", {entry.pending_to_child} change(s) waiting to be sent"
            print(f"  {node.name:20} {role:18} last sync {when}; checkpoints pull "
                  f"{node.pull_seq} push {node.push_seq}{pending}")
    print(f"Conflicts logged: {len(report.conflicts)}")
    for conflict in report.conflicts[-args.conflicts:]:
        print(f"  {conflict.kind} {conflict.int_id or conflict.guid}: kept {conflict.winner_origin}"
              f" ({format_time(stamp_datetime(conflict.winner_hlc))}), lost "
              f"{conflict.loser_origin} ({format_time(stamp_datetime(conflict.loser_hlc))})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a legacy arcpy script unchanged, supplying wmx as ``arcpy`` if arcpy is absent."""
    import importlib.util

    if importlib.util.find_spec("arcpy") is None:
        from wmx import arcpy

        sys.modules["arcpy"] = arcpy
    sys.argv = [args.script, *args.script_args]
    try:
        runpy.run_path(args.script, run_name="__main__")
    except ExecuteError as error:
        print(str(error), file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from wmx.demo import run_demo

    try:
        return EXIT_OK if run_demo(args.folder) else EXIT_ERROR
    except FileExistsError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_bench(args: argparse.Namespace) -> int:
    from wmx.bench import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmx", description="Replicate and synchronize Workflow Manager repositories.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress and details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("init", cmd_init, "create an embedded repository")
    sub.add_argument("path")
    sub.add_argument("--name", required=True)
    sub.add_argument("--config", choices=("minimum", "quick"), default="minimum")
    sub.add_argument("--job-id-start", type=int, default=1)

    sub = command("serve", cmd_serve, "publish a repository as a WMServer REST service")
    sub.add_argument("path")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=0)
    sub.add_argument("--service")
    sub.add_argument("--token-file")

    for name, handler, help_text in (
            ("replicate", cmd_replicate, "ReplicateJobData: copy the parent to every child"),
            ("sync", cmd_sync, "SynchronizeJobData: two-way sync of the parent and children")):
        sub = command(name, handler, help_text)
        sub.add_argument("parent", help="parent repository URL or path")
        sub.add_argument("name", help="parent repository name")
        sub.add_argument("children", help="value table: 'name true URL [last_sync_time];...'")
        if name == "sync":
            sub.add_argument("--dry-run", action="store_true",
                             help="report what a real run would do and write nothing")
            sub.add_argument("--policy", choices=("newest", "parent", "child"),
                             default="newest", help="conflict policy (default newest)")

    sub = command("export", cmd_export, "ExportJobData: write a .jxl exchange file")
    sub.add_argument("folder")
    sub.add_argument("location", help="repository path or URL")
    sub.add_argument("--name")
    sub.add_argument("--since")
    sub.add_argument("--until")

    sub = command("import", cmd_import, "ImportJobData: load a .jxl exchange file")
    sub.add_argument("file")
    sub.add_argument("location", help="repository path or URL")
    sub.add_argument("--merge", choices=("COMBINE", "REPLACE"), default="COMBINE")
    sub.add_argument("--name")

    sub = command("clear", cmd_clear, "ClearJobReplicationInfo: forget the cluster")
    sub.add_argument("location")

    sub = command("status", cmd_status, "show a repository's cluster, checkpoints, conflicts")
    sub.add_argument("location")
    sub.add_argument("--conflicts", type=int, default=10, help="how many conflicts to list")

    sub = command("run", cmd_run, "run a legacy arcpy script with wmx standing in for arcpy")
    sub.add_argument("script")
    sub.add_argument("script_args", nargs=argparse.REMAINDER)

    sub = command("demo", cmd_demo, "a parent and two children, edited, replicated, synced")
    sub.add_argument("folder", nargs="?", type=Path)

    sub = command("bench", cmd_bench, "the benchmark (python -m wmx.bench --help)")
    sub.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
