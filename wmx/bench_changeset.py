"""The limit of a delta between two SQLite files, for the benchmark's sync figures (SPEC §4):
the same changes as a **SQLite session changeset**, recorded on one file and applied to the
other, with ``apsw`` (the ``bench`` extra; also in ``dev``).

:class:`ChangesetPair` keeps two copies of a repository file, made with SQLite's backup API
before the measured changes. For each measured sync the benchmark hands it the rows that sync
moved (the changed jobs and their new history, read from both files before the sync): they are
written to the first copy under a session (``apsw.Session`` on the element table: the changes
being made, not timed), then the timed part generates the changeset (``Session.changeset``) and
applies it to the second copy on a fresh connection with the store's pragmas
(``apsw.Changeset.apply``, one transaction, conflicts abort). Both copies start equal and stay
equal, so every change applies without a conflict.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Optional

TABLE = "elements"
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")
"""The store's pragmas, on every connection of the pair (as on the raw sqlite3 baselines)."""

Writer = Callable[[Any], None]
"""Makes the changes on an open ``apsw.Connection`` (``wmx.bench``'s raw upsert of the rows)."""


def unavailable() -> Optional[str]:
    """Why the changeset figures cannot be measured here, or None."""
    try:
        import apsw
    except ImportError:
        return "apsw is not installed (pip install 'wmx[bench]')"
    if not hasattr(apsw, "Session"):
        return (f"apsw {apsw.apsw_version()} has no session extension (SQLite "
                f"{apsw.sqlite_lib_version()} built without SQLITE_ENABLE_SESSION)")
    return None


def versions() -> dict[str, str]:
    import apsw

    return {"apsw": apsw.apsw_version(), "sqlite": apsw.sqlite_lib_version()}


def _connect(path: Path) -> Any:
    import apsw

    db = apsw.Connection(str(path))
    for pragma in PRAGMAS:
        db.execute(pragma)
    return db


class ChangesetPair:
    """``recorded`` and ``applied``: two new, equal copies of ``source`` (the caller removes
    them); :meth:`measure` times one changeset from the first to the second."""

    def __init__(self, source: Path, recorded: Path, applied: Path) -> None:
        self.recorded, self.applied = recorded, applied
        with contextlib.closing(sqlite3.connect(str(source))) as original:
            for copy in (recorded, applied):
                with contextlib.closing(sqlite3.connect(str(copy))) as target:
                    original.backup(target)
        self.samples: list[float] = []
        self.sizes: list[int] = []

    def measure(self, write: Writer, settle: Callable[[], None]) -> float:
        """Make the changes on the first copy under a session, then time generating the
        changeset and applying it to the second copy. Returns the seconds."""
        import apsw

        with contextlib.closing(_connect(self.recorded)) as recorded:
            session = apsw.Session(recorded, "main")
            session.attach(TABLE)
            write(recorded)
            settle()
            started = time.perf_counter()
            changeset = session.changeset()
            with contextlib.closing(_connect(self.applied)) as applied:
                apsw.Changeset.apply(changeset, applied)
            seconds = time.perf_counter() - started
            session.close()
        if not changeset:
            raise RuntimeError("the session recorded no change")
        self.samples.append(seconds)
        self.sizes.append(len(changeset))
        return seconds
