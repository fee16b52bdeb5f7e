"""What every ``wmx`` command shares: the options accepted anywhere on the line, the acting
user, exit codes, and the one report a command writes (text for people, or the JSON document
of docs/cli-json.md with ``--json``).

A command never prints on its own: it hands lines and data to its :class:`Output`, so that
``--json`` keeps standard output a single JSON object whatever happens. This module must
never print a token or a password, and never hold the logic of a command.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import datetime
from typing import Any, Optional

from wmx.errors import (
    DATASET_NOT_FOUND,
    INVALID_VALUE,
    NOT_AUTHORIZED,
    PARENT_UNREACHABLE,
)
from wmx.messages import ERROR, INFORMATIVE, Message
from wmx.tools.connect import USER_VARIABLE

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# What Ctrl-C leaves behind, by kind of command (printed as "wmx: <text>", exit code 130).
INTERRUPTED_READING = "interrupted; nothing was changed (this command only reads)."
INTERRUPTED_WRITING = ("interrupted; every change already made is complete and kept, none was "
                       "half-written.")
INTERRUPTED_COPYING = ("interrupted; nothing was changed in the child being copied (a copy is "
                       "swapped in only when complete). Children already copied stay copied; "
                       "run the command again to finish.")
INTERRUPTED_CHECKPOINTED = ("interrupted; what was already applied is kept and checkpointed, so "
                            "running the same command again completes it without sending "
                            "anything twice.")
INTERRUPTED_EXPORTING = ("interrupted; no exchange file was left behind (a file appears only "
                         "when complete).")
INTERRUPTED_CREATING = "interrupted; no repository was created."
INTERRUPTED_SCRIPT = ("interrupted; the script was stopped where it was. A wmx tool it was "
                      "running leaves no half-written change: run the script again to finish.")
SCHEMA = "wmx-cli/1"
"""Version of the ``--json`` document (docs/cli-json.md); bumped only for incompatible changes."""


class CommandError(Exception):
    """A command cannot do what was asked; ``code`` is the Esri-style message ID."""

    def __init__(self, code: Optional[int], message: str, exit_code: int = EXIT_ERROR, *,
                 shown: bool = False, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage
        """For a usage error: the command's usage line, shown above the error."""
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.shown = shown
        """The lines were already printed (a tool's messages, as they happened)."""

    @property
    def rendered(self) -> str:
        return f"ERROR {self.code:06d}: {self.message}" if self.code else f"ERROR: {self.message}"


def repository_failure(exc: Exception, location: str = "") -> CommandError:
    """A repository error in the user's terms, with the code a tool would give it."""
    from wmx.repository import InvalidRequest, NotAuthorized, RepositoryNotFound

    if isinstance(exc, RepositoryNotFound):
        return CommandError(DATASET_NOT_FOUND, str(exc) or f"{location} does not exist")
    if isinstance(exc, NotAuthorized):
        return CommandError(NOT_AUTHORIZED, str(exc))
    if isinstance(exc, InvalidRequest):
        return CommandError(INVALID_VALUE, str(exc))
    return CommandError(PARENT_UNREACHABLE, str(exc))


def common_options() -> argparse.ArgumentParser:
    """-v/-q/--user/--json, accepted before and after the subcommand. SUPPRESS defaults keep
    a value given before the subcommand from being reset by the subcommand's parser."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options (before or after the command)")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also log what the engine does, on standard error")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress and no informative lines; warnings and errors only")
    group.add_argument("--user", metavar="NAME", default=argparse.SUPPRESS,
                       help=f"act as this Workflow Manager user ({USER_VARIABLE}, when set, "
                            "wins; default: your login)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON report on standard output (docs/cli-json.md)")
    return common


def acting_user(args: argparse.Namespace) -> str:
    """SPEC 2.8: WMX_USER when set, else --user, else the OS login."""
    return os.environ.get(USER_VARIABLE) or getattr(args, "user", None) or getpass.getuser()


def apply_user_option(args: argparse.Namespace) -> None:
    """Let the tools (which read WMX_USER) act as --user, never overriding a set WMX_USER."""
    user = getattr(args, "user", None)
    if user and not os.environ.get(USER_VARIABLE):
        os.environ[USER_VARIABLE] = user


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601 text, everything else as json knows it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Output:
    """The report of one command: lines as they happen, or one JSON document at the end."""

    def __init__(self, command: str, *, as_json: bool = False, quiet: bool = False) -> None:
        self.command = command
        self.as_json = as_json
        self.quiet = quiet
        self.data: dict[str, Any] = {}
        self.messages: list[Message] = []

    def line(self, text: str = "") -> None:
        """A line of the text report (nothing with --json: the data says it)."""
        if not self.as_json:
            print(text, flush=True)

    def info(self, text: str) -> None:
        """A line worth showing unless -q."""
        if not self.quiet:
            self.line(text)

    def message(self, message: Message) -> None:
        """A tool message as it is written: errors on stderr, the rest on stdout. Called from
        inside the tool, so a closed pipe (``wmx sync … | head -1``) must not raise there."""
        self.messages.append(message)
        if self.as_json or (self.quiet and message.severity == INFORMATIVE):
            return
        stream = sys.stderr if message.severity == ERROR else sys.stdout
        try:
            print(message.rendered, file=stream, flush=True)
        except (BrokenPipeError, ValueError):  # the reader went away: the tool goes on
            return

    def error(self, error: CommandError) -> None:
        if self.as_json or error.shown:
            return
        if error.usage:
            print(error.usage.rstrip(), file=sys.stderr)
            print(f"error: {error.message}", file=sys.stderr, flush=True)
        else:
            print(error.rendered, file=sys.stderr, flush=True)

    def finish(self, exit_code: int, error: Optional[CommandError] = None) -> int:
        """Write the JSON document (with --json) and return the exit code."""
        if self.as_json:
            document = {
                "schema": SCHEMA,
                "command": self.command,
                "ok": exit_code == EXIT_OK,
                "exit_code": exit_code,
                "error": None if error is None else {"code": error.code,
                                                     "message": error.message},
                "messages": [{"severity": m.severity, "code": m.code, "text": m.rendered}
                             for m in self.messages],
                "data": _plain(self.data),
            }
            print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)
        return exit_code
