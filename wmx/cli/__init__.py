"""The ``wmx`` command line (entry point :func:`main`): init, serve, replicate, sync, export,
import, clear, status, conflicts, jobs, run, demo, bench.

This module builds the parser and runs one command with what every command shares: -v/-q,
--user and --json anywhere on the line, progress bars on a terminal, tool messages printed as
they happen, errors as one ``ERROR`` line (or a JSON error), Ctrl-C as one line and exit code
130. The commands live in :mod:`wmx.cli.tools`, :mod:`wmx.cli.status` and
:mod:`wmx.cli.jobs`; none holds logic a Python script could not reach through the library.
Exit codes: 0 success, 1 a tool error, 2 bad usage, 3 some children failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, Callable, NoReturn, Optional

from wmx.cli import jobs, status, tools
from wmx.cli.output import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    INTERRUPTED_WRITING,
    CommandError,
    Output,
    apply_user_option,
    common_options,
)

EXIT_CODES_HELP = ("exit codes: 0 success, 1 a tool error, 2 bad usage, 3 some children "
                   "failed, 130 interrupted (Ctrl-C)")
_OPTIONS_WITH_VALUE = frozenset({"--user"})
_PASS_THROUGH = "bench"
"""The command whose arguments all belong to another program (python -m wmx.bench)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors raise, so that --json can report them as JSON too."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(None, f"{self.prog}: {message}", exit_code=EXIT_USAGE,
                           usage=self.format_usage())


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever sys.stderr is now (progress bars redirect it to print above them)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current sys.stderr."""


def _configure_logging(verbose: bool) -> None:
    """Engine logs on stderr with -v only: without it, the tool's messages already report
    each child (a second line per failure would say it twice)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("wmx.engine").setLevel(logging.NOTSET if verbose else logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    from wmx import __version__

    common = common_options()
    parser = _Parser(prog="wmx", parents=[common], epilog=EXIT_CODES_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Replicate and synchronize Workflow Manager repositories, "
                                 "and work with their jobs.\n\nexample:\n  wmx sync "
                                 "redlands.wmxdb Redlands \"Ohio true ohio.wmxdb\" -v")
    parser.add_argument("--version", action="version", version=f"wmx {__version__}",
                        help="print the version of wmx and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    def adder(group: Any, prefix: str) -> Callable[..., argparse.ArgumentParser]:
        def command(name: str, handler: Optional[Callable[..., int]], help_text: str,
                    example: str, interrupted: str = INTERRUPTED_WRITING
                    ) -> argparse.ArgumentParser:
            sub = group.add_parser(name, help=help_text, description=help_text,
                                   parents=[common],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=f"example:\n  {example}\n\n{EXIT_CODES_HELP}")
            sub.set_defaults(handler=handler, interrupted=interrupted,
                             report_name=f"{prefix}{name}")
            return sub
        return command

    def family(name: str, help_text: str, example: str) -> Callable[..., argparse.ArgumentParser]:
        sub = adder(commands, "")(name, None, help_text, example)
        return adder(sub.add_subparsers(dest="action", required=True, metavar="ACTION",
                                        parser_class=_Parser), f"{name} ")

    tools.register(adder(commands, ""))
    status.register(adder(commands, ""))
    jobs.register(adder(commands, ""), family)
    return parser


def _command_word(argv: Sequence[str]) -> Optional[int]:
    """Where the command name is in ``argv`` (common options may come first)."""
    skip = False
    for index, token in enumerate(argv):
        if skip:
            skip = False
        elif token in _OPTIONS_WITH_VALUE:
            skip = True
        elif not token.startswith("-"):
            return index
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output("wmx", as_json="--json" in argv)
    at = _command_word(argv)
    if at is not None and argv[at] == _PASS_THROUGH:
        return _interruptible(lambda: tools.cmd_bench(argv[at + 1:]), out, "interrupted.")
    try:
        args = build_parser().parse_args(argv)
    except CommandError as error:
        out.error(error)
        return out.finish(error.exit_code, error)
    out = Output(args.report_name, as_json=getattr(args, "json", False),
                 quiet=getattr(args, "quiet", False))
    _configure_logging(getattr(args, "verbose", False))
    apply_user_option(args)

    def run() -> int:
        from wmx.cli.progress_view import showing

        with showing(quiet=out.quiet, as_json=out.as_json):
            return args.handler(args, out)
    return _interruptible(run, out, args.interrupted)


def _interruptible(run: Callable[[], int], out: Output, interrupted: str) -> int:
    """Run a command: its errors as one line or JSON, Ctrl-C as one line and exit code 130."""
    try:
        return out.finish(run())
    except CommandError as error:
        out.error(error)
        return out.finish(error.exit_code, error)
    except KeyboardInterrupt:
        if not out.as_json:
            print(f"\nwmx: {interrupted}", file=sys.stderr, flush=True)
        stopped = CommandError(None, interrupted, exit_code=EXIT_INTERRUPTED)
        return out.finish(EXIT_INTERRUPTED, stopped)
    except BrokenPipeError:
        return EXIT_ERROR
