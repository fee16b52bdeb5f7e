"""``wmx run SCRIPT.py``: run an untouched ``import arcpy`` script with wmx standing in for
arcpy (when the real one is absent), as ``python SCRIPT.py`` would run it.

The script gets ``sys.argv = [SCRIPT.py, *args]``, ``__name__ == "__main__"``, its folder first
on ``sys.path``, and ``import arcpy`` gives :mod:`wmx.arcpy`. What the user sees when it cannot
run is said in their terms: a missing file, Python 2 syntax (what to change), the script's own
traceback without wmx's frames. Exit codes: the script's own (``sys.exit``), 0 when it ends,
1 when it raises, 2 when it could not start. This module must never run a tool itself, and
must leave ``sys`` as it found it when the script ends.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import re
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from wmx.script_tool import clear_parameters

EXIT_OK, EXIT_RAISED, EXIT_NOT_STARTED = 0, 1, 2

_WMX_FOLDER = Path(__file__).resolve().parent

#: Python 2 forms (the line pattern, and what to write instead), most common first.
_PYTHON2_FORMS = (
    (re.compile(r"^\s*print\b\s*(?![\s(=]|$)"), 'print "..." -> print("...")'),
    (re.compile(r"\bexcept\s+[\w.]+(?:\s*\([^)]*\))?\s*,\s*\w+\s*:"),
     "except E, e: -> except E as e:"),
    (re.compile(r"^\s*raise\s+[\w.]+\s*,"), 'raise E, "text" -> raise E("text")'),
    (re.compile(r"^\s*exec\s+[\"'\w]"), "exec code -> exec(code)"),
    (re.compile(r"<>"), "a <> b -> a != b"),
    (re.compile(r"(?<![\w.])0\d+\b"), "0777 -> 0o777"),
    (re.compile(r"\bur[\"']"), "ur'...' -> r'...'"),
)
_STRINGS_AND_COMMENTS = re.compile(r"'[^']*'|\"[^\"]*\"|#.*$")
_PYTHON2_SYNTAX_MESSAGES = ("Missing parentheses in call to", "multiple exception types must",
                            "leading zeros in decimal integer")

#: Names Python 2 had and Python 3 calls otherwise (NameError / ModuleNotFoundError hints).
_PYTHON3_NAMES = {
    "unicode": "str", "basestring": "str", "long": "int", "xrange": "range",
    "raw_input": "input", "unichr": "chr", "file": "open", "reduce": "functools.reduce",
    "reload": "importlib.reload", "execfile": "exec(open(path).read())",
    "urllib2": "urllib.request", "urlparse": "urllib.parse", "httplib": "http.client",
    "ConfigParser": "configparser", "Queue": "queue", "StringIO": "io.StringIO",
    "cPickle": "pickle", "Tkinter": "tkinter", "cStringIO": "io.BytesIO",
}


def run_script(path: str, argv: list[str]) -> int:
    """Run the script at ``path`` with ``argv`` as its arguments; return the exit code.
    Ctrl-C (KeyboardInterrupt) is left to the caller, which reports it as one line."""
    script = Path(path)
    code = _compile(script)
    if code is None:
        return EXIT_NOT_STARTED
    with _standing_in(script, argv) as module:
        try:
            exec(code, module.__dict__)
        except SystemExit as stop:
            return _exit_code(stop)
        except Exception as error:
            print(_script_traceback(error), end="", file=sys.stderr)
            hint = _python3_name_hint(error)
            if hint:
                print(f"wmx run: {hint}", file=sys.stderr)
            return EXIT_RAISED
    return EXIT_OK


def _fail(text: str) -> None:
    print(f"wmx run: {text}", file=sys.stderr)


def _compile(script: Path) -> Optional[types.CodeType]:
    """The script's code, or None after saying why it cannot start."""
    if script.is_dir():
        _fail(f"{script} is a folder, not a Python script")
        return None
    try:
        source = script.read_bytes()
    except FileNotFoundError:
        _fail(f"{script}: no such script (check the path; the current folder is {Path.cwd()})")
        return None
    except OSError as error:
        _fail(f"cannot read {script}: {error.strerror or error}")
        return None
    try:
        return compile(source, str(script), "exec", dont_inherit=True)
    except SyntaxError as error:
        _fail(_python2_text(script, source, error) or _syntax_text(script, error))
    except ValueError as error:  # null bytes: not a text file at all
        _fail(f"{script} is not a Python script ({error})")
    return None


def _syntax_text(script: Path, error: SyntaxError) -> str:
    shown = "".join(traceback.format_exception_only(type(error), error)).rstrip()
    return f"{script} is not valid Python (line {error.lineno}):\n{shown}"


def _python2_text(script: Path, source: bytes, error: SyntaxError) -> Optional[str]:
    """When the syntax error is Python 2's, say so, and list every line to change."""
    lines = source.decode("utf-8", errors="replace").splitlines()
    bad_line = error.text or (lines[error.lineno - 1] if error.lineno and
                              error.lineno <= len(lines) else "")
    forms = _python2_forms(bad_line)
    if not forms and not any(text in (error.msg or "") for text in _PYTHON2_SYNTAX_MESSAGES):
        return None
    found = [(number, advice) for number, line in enumerate(lines, 1)
             for advice in _python2_forms(line)]
    numbers = sorted({number for number, _advice in found})
    advice = list(dict.fromkeys([*forms, *(a for _n, a in found)]))
    listed = ", ".join(str(n) for n in numbers[:20]) + (" ..." if len(numbers) > 20 else "")
    return (
        f"{script}: this script is written for Python 2 (ArcMap); wmx runs Python 3, as "
        f"ArcGIS Pro does.\n  line {error.lineno}: {bad_line.strip()}\n"
        f"Change: {'; '.join(advice) or error.msg}.\n"
        + (f"Python 2 forms found on lines {listed}.\n" if numbers else "")
        + "ArcGIS Pro's Analyze Tools For Pro (or the 2to3 tool) lists every line to change."
    )


def _python2_forms(line: str) -> list[str]:
    """What to change on one line; text in quotes and comments is not code (a value table's
    ``2011-08-08`` is no octal literal)."""
    code = _STRINGS_AND_COMMENTS.sub("''", line)
    return [advice for pattern, advice in _PYTHON2_FORMS if pattern.search(code)]


@contextlib.contextmanager
def _standing_in(script: Path, argv: list[str]) -> Iterator[types.ModuleType]:
    """``sys`` as ``python SCRIPT.py ARGS`` would set it, with wmx as ``arcpy`` when the real
    one is absent; everything is put back afterwards."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    saved_main, saved_arcpy = sys.modules.get("__main__"), sys.modules.get("arcpy")
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(script), __builtins__=builtins, __cached__=None)
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.resolve().parent))
    if saved_arcpy is None and importlib.util.find_spec("arcpy") is None:
        from wmx import arcpy

        sys.modules["arcpy"] = arcpy
    sys.modules["__main__"] = module
    clear_parameters()
    try:
        yield module
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        _restore("__main__", saved_main)
        _restore("arcpy", saved_arcpy)


def _restore(name: str, module: Optional[types.ModuleType]) -> None:
    if module is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module


def _exit_code(stop: SystemExit) -> int:
    """``sys.exit()`` semantics: None is 0, an int is itself, anything else is printed, 1."""
    if stop.code is None:
        return EXIT_OK
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return EXIT_RAISED


def _is_wmx(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_WMX_FOLDER)
    except (OSError, ValueError):
        return False


def _script_frames(stack: traceback.StackSummary) -> traceback.StackSummary:
    """The script's part of a stack: without the frame that runs it, and cut where the
    script calls into wmx (what happens inside a tool is in the tool's messages)."""
    frames = list(stack)
    while frames and _is_wmx(frames[0].filename):
        frames.pop(0)
    kept = []
    for frame in frames:
        if _is_wmx(frame.filename):
            break
        kept.append(frame)
    return traceback.StackSummary.from_list(kept)


def _trim(shown: traceback.TracebackException) -> None:
    """Trim every exception of a chain (``raise ... from ...`` and "during handling")."""
    pending: list[Optional[traceback.TracebackException]] = [shown]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        item.stack = _script_frames(item.stack)
        pending += [item.__cause__, item.__context__]


def _script_traceback(error: BaseException) -> str:
    shown = traceback.TracebackException.from_exception(error)
    _trim(shown)
    return "".join(shown.format())


def _python3_name_hint(error: BaseException) -> Optional[str]:
    name = getattr(error, "name", None)
    if isinstance(error, (NameError, ModuleNotFoundError)) and name in _PYTHON3_NAMES:
        return f"{name} is Python 2 (ArcMap); in Python 3 use {_PYTHON3_NAMES[name]}."
    return None
