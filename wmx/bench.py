"""The wmx benchmark: ``python -m wmx.bench`` (or ``wmx bench``).

Generates realistic repositories from a fixed seed in a temporary folder, then measures side by
side, in one run, the figures that SPEC §4 sets targets for:

* the **raw limit**: a plain ``sqlite3`` copy of the same rows (same columns, same table
  definition, same pragmas as the store) from one file to another, in this process — SELECT
  streamed into one ``executemany`` INSERT, one transaction;
* **replicate** embedded → embedded (``wmx.engine.replicate.replicate``) and over HTTP on
  loopback (parent and child each served by a ``wmx serve`` process of its own, as deployed:
  servers in this process would share its GIL with the client), as rows/s and as a ratio to
  the raw limit;
* **synchronize** K changed jobs in a repository of 10,000 rows and of N (1,000,000) rows, and
  the ratio of the two times (sync cost must follow the changes, not the repository size);
  each against the same changes as a **SQLite session changeset** recorded on one copy of the
  parent and applied to another (``wmx.bench_changeset``, with apsw; skipped with the reason
  without it) and against a raw ``sqlite3`` sync;
* a **no-op synchronize** of a parent and 10 children over HTTP (seconds);
* the **peak RSS** of a 1,000,000-row replicate, measured in a child process of its own;
* **Esri's server** (the strict double of ``tests/esri_double.py``, in a process of its own, with
  a simulated per-request latency): the first run against it (mirror built) and a sync with
  nothing new, as seconds, requests and requests per job, at 1,000 and 10,000 jobs;
* **PostgreSQL** (``wmx.bench_postgres``): replicate embedded → PostgreSQL as a ratio to a raw
  ``COPY`` of the same rows, the sync figure with a PostgreSQL child at both sizes, and REST
  writes through two ``wmx serve`` processes on one PostgreSQL repository as a ratio to one
  process (skipped, with the reason, without a server).

Every figure that has a physical limit is reported as a ratio to the raw copy measured in the
same run, so the verdicts hold on a slow or noisy machine. Timings use ``time.perf_counter``,
cheap figures are repeated (the median is reported) after a warm-up run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

from wmx import bench_changeset, bench_postgres, bench_serve
from wmx.engine.outcome import ChildTarget, RunOutcome
from wmx.engine.replicate import DEFAULT_PAGE_SIZE as REPLICATE_PAGE_SIZE
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import DEFAULT_PAGE_SIZE as SYNC_PAGE_SIZE
from wmx.engine.synchronize import synchronize
from wmx.model import codec
from wmx.model.changes import ROW_FIELDS
from wmx.model.records import (
    STORAGE_EMBEDDED,
    STORAGE_LINKED_FILE,
    Activity,
    Attachment,
    Group,
    Hold,
    HoldType,
    Job,
    JobType,
    Notes,
    User,
)
from wmx.repository import open_repository, open_store
from wmx.repository.base import Repository
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.jobs import notes_guid
from wmx.repository.setup import initialise

USER = "wmxbench"
"""The administrator of every generated repository (and the user of every REST call)."""
GENERATE_BATCH = 20_000
"""Rows written per transaction while generating (bulk, never one transaction per job)."""
BASE_MILLIS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: generated dates are reproducible
RAW_COLUMNS = (*ROW_FIELDS, "seq")

TARGETS = {
    "replicate_embedded": ("ratio to raw copy", ">=", 0.90),
    "replicate_http": ("ratio to raw copy", ">=", 0.60),
    "sync_changeset_small": ("sync / changeset time", "<=", 1.5),
    "sync_changeset_large": ("sync / changeset time", "<=", 1.5),
    "sync_scaling": ("large / small sync time", "<=", 1.5),
    "noop_sync_http": ("seconds", "<=", 0.5),
    "replicate_peak_rss": ("MB", "<", 100.0),
    "esri_first_sync": ("seconds", "<", 60.0),
    "esri_noop_sync": ("seconds", "<", 60.0),
    **bench_postgres.TARGETS,
}
"""SPEC §4: figure -> (unit, comparison, threshold). The Esri targets are set for 10,000 jobs
and judged at the largest size measured (the verdict names it)."""

SMOKE = {"rows": 3_000, "small_rows": 600, "changes": 10, "repeat": 2, "noop_children": 10,
         "rss_rows": 3_000, "esri_jobs": (10, 30), **bench_postgres.SMOKE}

ESRI_DOUBLE = Path(__file__).resolve().parent.parent / "tests" / "esri_double.py"
"""The strict double of Esri's WMServer; found beside the package in a source checkout only."""
ESRI_SERVICE = "Redlands"


# --- command line ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wmx.bench",
        description="Measure replicate and synchronize against the raw sqlite3 copy limit "
                    "(SPEC §4 targets).")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: proves the benchmark runs in a few seconds (CI)")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows of the large repository (default 1,000,000)")
    parser.add_argument("--small-rows", type=int, default=10_000,
                        help="rows of the small repository of the sync comparison (10,000)")
    parser.add_argument("--rss-rows", type=int, default=None,
                        help="rows replicated by the peak-RSS child process (default --rows)")
    parser.add_argument("--changes", type=int, default=100,
                        help="changed jobs per measured sync (default 100)")
    parser.add_argument("--noop-children", type=int, default=10,
                        help="children of the no-op sync over HTTP (default 10)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions of the cheap figures; the median is reported (3)")
    parser.add_argument("--http-repeat", type=int, default=1,
                        help="repetitions of the HTTP replicate (default 1)")
    parser.add_argument("--seed", type=int, default=20240601, help="generator seed")
    parser.add_argument("--history", type=float, default=6.0,
                        help="history (activity) rows per job, on average (6)")
    parser.add_argument("--holds", type=float, default=0.5, help="holds per job (0.5)")
    parser.add_argument("--attachments", type=float, default=0.25,
                        help="attachments per job (0.25); half embedded, half linked")
    parser.add_argument("--attachment-bytes", type=int, default=4096,
                        help="size of an embedded attachment (4096)")
    parser.add_argument("--config-size", type=int, default=60,
                        help="extra configuration elements: users, groups, job and hold "
                             "types (60)")
    parser.add_argument("--page-size", type=int, default=None,
                        help="engine page size (default: the engine's own)")
    parser.add_argument("--skip-http", action="store_true",
                        help="skip the figures that need in-process HTTP servers")
    parser.add_argument("--esri-jobs", type=_sizes, default=(1_000, 10_000),
                        help="jobs of the Esri double, comma-separated (1000,10000)")
    parser.add_argument("--esri-latency", type=float, default=0.005,
                        help="seconds the Esri double waits per request (0.005)")
    parser.add_argument("--skip-esri", action="store_true",
                        help="skip the figures against the Esri double")
    bench_postgres.add_arguments(parser)
    parser.add_argument("--output", default="bench-results.json",
                        help="where to write the JSON results (default bench-results.json)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="work in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--quiet", action="store_true", help="print the table only")
    parser.add_argument("--rss-child", nargs=2, metavar=("PARENT", "CHILD"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--esri-double", nargs=3, metavar=("FILE", "JOBS", "LATENCY"),
                        help=argparse.SUPPRESS)
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive job counts like 1000,10000: {text!r}")
    return sizes


def _settings(args: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    """Apply --smoke sizes to every size the caller did not give explicitly."""
    if args.smoke:
        given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
        for key, value in SMOKE.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    if args.rss_rows is None:
        args.rss_rows = args.rows
    return args


# --- platform helpers -------------------------------------------------------------------------

def peak_rss_mb() -> Optional[float]:
    """This process's peak resident set size in MB, or None where it cannot be read."""
    if sys.platform == "win32":
        return _windows_peak_rss_mb()
    try:  # Linux: the high-water mark of this address space only. getrusage's ru_maxrss
        # would also carry over the parent's peak across fork + exec.
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _windows_peak_rss_mb() -> Optional[float]:
    try:
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                        ("PeakWorkingSetSize", ctypes.c_size_t),
                        ("WorkingSetSize", ctypes.c_size_t),
                        ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
                        ("QuotaPagedPoolUsage", ctypes.c_size_t),
                        ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
                        ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
                        ("PagefileUsage", ctypes.c_size_t),
                        ("PeakPagefileUsage", ctypes.c_size_t)]

        counters = Counters()
        counters.cb = ctypes.sizeof(Counters)
        process = ctypes.windll.kernel32.GetCurrentProcess()  # type: ignore[attr-defined]
        if not ctypes.windll.psapi.GetProcessMemoryInfo(  # type: ignore[attr-defined]
                process, ctypes.byref(counters), counters.cb):
            return None
        return counters.PeakWorkingSetSize / (1024 * 1024)
    except (ImportError, AttributeError, OSError):
        return None


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def settle() -> None:
    """Let the write-back of earlier steps (files written, copied, deleted) finish, so that
    it does not land in the fsyncs of the next measurement."""
    if hasattr(os, "sync"):
        os.sync()


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    settle()
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def _check(outcome: RunOutcome, what: str) -> RunOutcome:
    if outcome.status_code:
        errors = "; ".join(f"{c.target.name}: {c.error}" for c in outcome.failed)
        raise RuntimeError(f"{what} failed: {errors}")
    return outcome


# --- generating repositories ----------------------------------------------------------------

class Generator:
    """Realistic repository content from a fixed seed, written in bulk transactions."""

    def __init__(self, args: argparse.Namespace, seed: int) -> None:
        self.args = args
        self.rng = random.Random(seed)

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def count(self, mean: float) -> int:
        """A per-job count with the given mean (deterministic for the seed)."""
        whole = int(mean)
        return whole + (self.rng.random() < mean - whole)

    def rows_per_job(self) -> float:
        a = self.args
        return 1 + a.history + a.holds + a.attachments + 0.5  # + notes on half the jobs

    def text(self, low: int, high: int) -> str:
        words = ("parcel", "review", "edit", "imagery", "survey", "boundary", "update",
                 "county", "road", "centerline", "address", "zoning", "QC", "map", "sheet")
        out: list[str] = []
        size = self.rng.randint(low, high)
        while sum(len(w) + 1 for w in out) < size:
            out.append(self.rng.choice(words))
        return " ".join(out)

    def config_records(self) -> Iterator[Any]:
        size = self.args.config_size
        users = max(1, size // 2)
        for i in range(users):
            yield User(user_name=f"user{i:04d}", full_name=f"Bench User {i}",
                       email=f"user{i:04d}@example.com")
        groups = max(1, size // 6)
        for i in range(groups):
            members = [f"user{j:04d}" for j in range(i, users, groups)]
            yield Group(id=100 + i, name=f"Team {i}", description=self.text(10, 40),
                        users=members, privileges=["CreateJob", "CloseJob", "ManageHolds"])
        for i in range(max(1, size // 6)):
            yield JobType(id=100 + i, name=f"Bench Type {i}", description=self.text(20, 80),
                          category="Bench", default_priority=i % 5,
                          default_description=self.text(20, 60))
        for i in range(max(1, size - users - 2 * groups)):
            yield HoldType(id=100 + i, name=f"Bench Hold {i}", description=self.text(10, 40))

    def job_records(self, job_id: int) -> Iterator[tuple[Any, str, Optional[str],
                                                          Optional[bytes]]]:
        """(record, guid, job_guid, content) for one job and everything it owns."""
        rng, args = self.rng, self.args
        job_guid = self.guid()
        created = BASE_MILLIS + job_id * 60_000
        closed = rng.random() < 0.4
        yield (Job(id=job_id, job_type_id=rng.randint(1, 3), name=f"Job {job_id}",
                   description=self.text(30, 240), status=5 if closed else rng.randint(1, 4),
                   priority=rng.randint(0, 4), stage=5 if closed else rng.randint(1, 4),
                   assigned_type=1, assigned_to=f"user{rng.randrange(30):04d}",
                   owned_by=USER, created_by=USER, created_date=created,
                   start_date=created, due_date=created + 14 * 86_400_000,
                   end_date=created + 7 * 86_400_000 if closed else None,
                   percentage_complete=100 if closed else rng.randint(0, 90),
                   version_name=f"sde.job_{job_id}",
                   aoi={"rings": [[[rng.uniform(-120, -70), rng.uniform(25, 49)]
                                   for _ in range(5)]],
                        "spatialReference": {"wkid": 4326}} if rng.random() < 0.3 else None),
               job_guid, None, None)
        for step in range(self.count(args.history)):
            yield (Activity(job_id=job_id, type=rng.randint(1, 8), user=f"user{step:04d}",
                            date=created + (step + 1) * 3_600_000, message=self.text(10, 90)),
                   self.guid(), job_guid, None)
        for index in range(self.count(args.holds)):
            yield (Hold(id=job_id * 4 + index, job_id=job_id, type=1, held_by=USER,
                        hold_date=created + 1_800_000, hold_comments=self.text(5, 60)),
                   self.guid(), job_guid, None)
        for index in range(self.count(args.attachments)):
            embedded = rng.random() < 0.5
            content = rng.randbytes(args.attachment_bytes) if embedded else None
            yield (Attachment(id=job_id * 4 + index, job_id=job_id, filename=f"doc{index}.pdf",
                              storage_type=STORAGE_EMBEDDED if embedded else STORAGE_LINKED_FILE,
                              folder=None if embedded else r"\\fileserver\jobs",
                              type=STORAGE_EMBEDDED if embedded else STORAGE_LINKED_FILE,
                              size=len(content) if content else 0),
                   self.guid(), job_guid, content)
        if rng.random() < 0.5:
            yield (Notes(job_id=job_id, notes=self.text(20, 300)), notes_guid(job_guid),
                   job_guid, None)

    def build(self, path: Path, name: str, rows: int) -> dict[str, Any]:
        """Create ``path`` holding about ``rows`` rows; returns what was generated."""
        started = time.perf_counter()
        jobs = max(1, round(rows / self.rows_per_job()))
        with initialise(path, name=name, config="quick", admin=USER) as repository:
            written = 0
            records = self._all_records(jobs)
            while True:
                batch = 0
                with repository.transaction() as tx:
                    for record, guid, job_guid, content in records:
                        repository.write_record(tx, record, guid=guid, job_guid=job_guid,
                                                content=content)
                        batch += 1
                        if batch >= GENERATE_BATCH:
                            break
                written += batch
                if batch < GENERATE_BATCH:
                    break
            total = repository.element_count()
        return {"path": str(path), "jobs": jobs, "rows": total,
                "bytes": path.stat().st_size, "seconds": time.perf_counter() - started}

    def _all_records(self, jobs: int) -> Iterator[tuple[Any, str, Optional[str],
                                                         Optional[bytes]]]:
        for record in self.config_records():
            yield record, self.guid(), None, None
        for job_id in range(1, jobs + 1):
            yield from self.job_records(job_id)


def new_child(path: Path, name: str) -> Path:
    _remove_db(path)
    initialise(path, name=name, config="minimum", admin=USER).close()
    return path


# --- the measurements -------------------------------------------------------------------------

def raw_copy(source: Path, target: Path) -> int:
    """The physical limit: the same rows and columns copied with nothing but sqlite3."""
    _remove_db(target)
    columns = ", ".join(RAW_COLUMNS)
    marks = ",".join("?" * len(RAW_COLUMNS))
    with contextlib.closing(_raw_connect(source)) as src, \
            contextlib.closing(_raw_connect(target)) as dst:
        dst.execute(_element_table_sql())
        dst.execute("BEGIN")
        src.execute("BEGIN")
        rows = src.execute(f"SELECT {columns} FROM elements")
        dst.executemany(f"INSERT INTO elements ({columns}) VALUES ({marks})", rows)
        count = dst.execute("SELECT COUNT(*) FROM elements").fetchone()[0]
        src.execute("COMMIT")
        dst.execute("COMMIT")
    return count


def raw_sync(parent: Path, child: Path, parent_since: int, child_since: int) -> int:
    """The limit of a sync, for the same changes: the rows each side wrote after the given log
    positions, read in log order and upserted by GUID on the other side (one transaction each
    way), with nothing but sqlite3 on fresh connections. Returns the rows moved."""
    with contextlib.closing(_raw_connect(parent)) as parent_db, \
            contextlib.closing(_raw_connect(child)) as child_db:
        from_child, from_parent = _raw_rows(child_db, child_since), _raw_rows(parent_db,
                                                                              parent_since)
        _raw_upsert(parent_db, from_child)
        _raw_upsert(child_db, from_parent)
    return len(from_child) + len(from_parent)


def raw_head(path: Path) -> int:
    """The newest log position of a repository file."""
    with contextlib.closing(_raw_connect(path)) as db:
        return db.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]


def _raw_connect(path: Path) -> sqlite3.Connection:
    """A plain connection with the store's pragmas."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def _raw_rows(db: sqlite3.Connection, since_seq: int) -> list[tuple]:
    return db.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM elements WHERE seq>? ORDER BY seq",
                      (since_seq,)).fetchall()


def _raw_upsert(db: sqlite3.Connection, rows: list[tuple]) -> None:
    marks = ",".join("?" * len(RAW_COLUMNS))
    versions = ", ".join(f"{column}=excluded.{column}" for column in RAW_COLUMNS[5:])
    db.execute("BEGIN IMMEDIATE")
    seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]
    # A new element gets the next row number (the snapshot cursor), as the store gives it.
    db.executemany(f"INSERT INTO elements ({', '.join(RAW_COLUMNS)}, row_no) VALUES ({marks},"
                   " (SELECT COALESCE(MAX(row_no), 0) + 1 FROM elements))"
                   f" ON CONFLICT(guid) DO UPDATE SET {versions}",
                   [(*row, seq + offset) for offset, row in enumerate(rows, start=1)])
    db.execute("COMMIT")


@contextlib.contextmanager
def _recorded(parent: Path, child: Path, into: list[list[tuple]]) -> Iterator[None]:
    """Appends to ``into`` the rows both repository files wrote inside the block (in log
    order): the changes the next sync moves."""
    heads = raw_head(parent), raw_head(child)
    yield
    rows: list[tuple] = []
    for path, head in zip((parent, child), heads):
        with contextlib.closing(_raw_connect(path)) as db:
            rows.extend(_raw_rows(db, head))
    into.append(rows)


def _element_table_sql() -> str:
    from wmx.repository import embedded

    return embedded._ELEMENT_TABLE.format(table="elements")


def _opener(location: str) -> Repository:
    return open_repository(location, user=USER) if location.startswith("http") else \
        open_repository(location)


def replicate_once(parent: str, child: str, name: str, page_size: Optional[int]) -> int:
    with contextlib.closing(_opener(parent)) as repository:
        outcome = _check(replicate(repository, [ChildTarget(name, child)], _opener,
                                   page_size=page_size or REPLICATE_PAGE_SIZE), "replicate")
    return outcome.children[0].loaded_rows


def sync_once(parent: str, targets: list[ChildTarget],
              page_size: Optional[int]) -> RunOutcome:
    with contextlib.closing(_opener(parent)) as repository:
        return _check(synchronize(repository, targets, _opener,
                                  page_size=page_size or SYNC_PAGE_SIZE), "synchronize")


@contextlib.contextmanager
def served(*paths: Path) -> Iterator[list[str]]:
    from wmx.server.run import ServerThread

    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(ServerThread(path)).url for path in paths]


# --- the Esri double in a process of its own ---------------------------------------------------

ESRI_ROLE = ("Esri server as the parent of an embedded child: the migration path, in which a "
             "whole Classic repository is read. The first run is ReplicateJobData into a new "
             "child (a sync needs the cluster's checkpoints, which live in the mirror, so the run "
             "that builds the mirror is the replicate); the sync with nothing new is "
             "SynchronizeJobData of the pair. Reading the server (the poll) costs the same in "
             "the child role.")
_ID_SEGMENT = re.compile(r"(?<![^/])\d+(?![^/])")
"""A path segment that is an id (``jobs/12/holds`` -> ``jobs/{id}/holds``)."""


def esri_unavailable(args: argparse.Namespace) -> Optional[str]:
    """Why the Esri figures cannot be measured here, or None."""
    if args.skip_esri:
        return "--skip-esri"
    if not ESRI_DOUBLE.is_file():
        return (f"the Esri double {ESRI_DOUBLE} is not here (an installed wmx has no tests "
                "folder: run the benchmark from a source checkout)")
    return None


def _load_esri_double(path: Path) -> Any:
    """The double's module, loaded by path: it is a test file, not part of the package."""
    spec = importlib.util.spec_from_file_location("wmx_bench_esri_double", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the Esri double {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def request_summary(double: Any) -> dict[str, Any]:
    """What the double received since the last summary, counted by method and path shape."""
    with double.lock:
        records = list(double.requests)
        undocumented = [f"{r.method} {r.path}" for r in double.undocumented]
        unimplemented = [f"{r.method} {r.path}" for r in double.unimplemented]
        errors = list(double.internal_errors)
        double.clear_requests()
    shapes = Counter(f"{r.method} {_ID_SEGMENT.sub('{id}', r.path) or '(root)'}"
                     for r in records)
    return {"requests": len(records), "by_request": dict(shapes.most_common()),
            "undocumented": undocumented, "unimplemented": unimplemented,
            "internal_errors": errors}


def esri_double_child(args: argparse.Namespace) -> int:
    """``--esri-double FILE JOBS LATENCY``: serve a populated double; print its URL, then one
    JSON request summary (with the CPU seconds the double spent) per line read from stdin;
    stop at the end of stdin."""
    path, jobs, latency = Path(args.esri_double[0]), int(args.esri_double[1]), float(
        args.esri_double[2])
    double = _load_esri_double(path).EsriDouble(ESRI_SERVICE, latency=latency, users=(USER,))
    double.populate(jobs)
    with double:
        print(double.url, flush=True)
        cpu = time.process_time()
        for _ in sys.stdin:
            now = time.process_time()
            print(json.dumps({**request_summary(double), "cpu_s": now - cpu}), flush=True)
            cpu = now
    return 0


class EsriDoubleProcess:
    """The Esri double serving in a child process, so it does not share the client's GIL."""

    def __init__(self, double: Path, jobs: int, latency: float) -> None:
        command = [sys.executable, "-m", "wmx.bench", "--esri-double", str(double), str(jobs),
                   repr(latency)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, encoding="utf-8")
        try:
            self.url = self._line("its URL")
        except BaseException:
            self.close()
            raise

    def _line(self, what: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Esri double stopped before sending {what} "
                               f"(exit code {self.process.wait()})")
        return line.strip()

    def requests(self) -> dict[str, Any]:
        """The summary of the requests made since the last call."""
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return json.loads(self._line("its request summary"))

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> EsriDoubleProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def state_folder(path: Path) -> Iterator[Path]:
    """A fresh ``WMX_STATE_DIR`` (where Esri mirrors live) for the duration."""
    from wmx.state import STATE_VARIABLE

    shutil.rmtree(path, ignore_errors=True)
    before = os.environ.get(STATE_VARIABLE)
    os.environ[STATE_VARIABLE] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(STATE_VARIABLE, None)
        else:
            os.environ[STATE_VARIABLE] = before
        shutil.rmtree(path, ignore_errors=True)


def esri_figure(timing: tuple[float, float], summary: dict[str, Any], jobs: int,
                latency: float, connections: int) -> dict[str, Any]:
    """One run's figures. Where the time went: ``client_cpu_s`` (this process, all threads),
    ``double_cpu_s`` (the double's process) and ``latency_floor_s``, the least time the
    requests take when ``connections`` of them always wait in parallel."""
    seconds, cpu = timing
    return {"seconds": seconds, "requests": summary["requests"],
            "requests_per_job": summary["requests"] / jobs, "client_cpu_s": cpu,
            "double_cpu_s": summary["cpu_s"],
            "latency_floor_s": summary["requests"] * latency / connections, **{
                key: summary[key] for key in ("by_request", "undocumented", "unimplemented",
                                              "internal_errors")}}


def _timed_cpu(action: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """(seconds, CPU seconds of this process) of ``action``, and its value."""
    cpu: list[float] = []

    def measured() -> Any:
        cpu.append(time.process_time())
        value = action()
        cpu.append(time.process_time())
        return value

    seconds, value = _timed(measured)
    return (seconds, cpu[1] - cpu[0]), value


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.figures: dict[str, Any] = {}
        self.repositories: dict[str, Any] = {}

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    # -- preparation

    def generate(self) -> None:
        args = self.args
        for key, rows, seed in (("large", args.rows, args.seed),
                                ("small", args.small_rows, args.seed + 1)):
            self.say(f"generating the {key} repository (~{rows:,} rows)...")
            info = Generator(args, seed).build(self.folder / f"{key}.wmxdb", key.title(), rows)
            self.repositories[key] = info
            self.say(f"  {info['rows']:,} rows, {info['jobs']:,} jobs, "
                     f"{info['bytes'] / 1e6:,.1f} MB in {info['seconds']:.1f} s")

    # -- replicate throughput

    def replicate_throughput(self) -> None:
        args = self.args
        parent = Path(self.repositories["large"]["path"])
        raw_target = self.folder / "raw-copy.db"
        child = new_child(self.folder / "large-child.wmxdb", "LargeChild")
        self.say("raw sqlite3 copy vs replicate embedded -> embedded...")
        raw_copy(parent, raw_target)  # warm-up: the parent file is in the OS cache from now on
        raw_times, emb_times = [], []
        rows = 0
        for _ in range(max(1, args.repeat)):
            seconds, rows = _timed(lambda: raw_copy(parent, raw_target))
            raw_times.append(seconds)
            seconds, loaded = _timed(lambda: replicate_once(str(parent), str(child),
                                                            "LargeChild", args.page_size))
            emb_times.append(seconds)
            if loaded != rows:
                raise RuntimeError(f"replicate copied {loaded} rows, the raw copy {rows}")
            self.say(f"  raw {raw_times[-1]:.2f} s, replicate {emb_times[-1]:.2f} s")
        _remove_db(raw_target)
        raw = _median(raw_times)
        self.figures["raw_copy"] = {"rows": rows, "seconds": raw, "rows_per_s": rows / raw,
                                    "samples": raw_times}
        emb = _median(emb_times)
        self.figures["replicate_embedded"] = {
            "rows": rows, "seconds": emb, "rows_per_s": rows / emb, "ratio_to_raw": raw / emb,
            "samples": emb_times}

    def replicate_http(self) -> None:
        args = self.args
        if args.skip_http:
            self.figures["replicate_http"] = {"skipped": True}
            return
        parent = Path(self.repositories["large"]["path"])
        child = new_child(self.folder / "http-child.wmxdb", "HttpChild")
        self.say("replicate over HTTP (loopback, a wmx serve process each)...")
        times = []
        rows = 0
        with bench_serve.ServeProcess(str(parent)) as parent_server, \
                bench_serve.ServeProcess(str(child)) as child_server:
            parent_url, child_url = parent_server.url, child_server.url
            for _ in range(max(1, args.http_repeat)):
                seconds, rows = _timed(lambda: replicate_once(parent_url, child_url,
                                                              "HttpChild", args.page_size))
                times.append(seconds)
                self.say(f"  {seconds:.2f} s")
        _remove_db(child)
        seconds = _median(times)
        raw = self.figures["raw_copy"]
        self.figures["replicate_http"] = {
            "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "ratio_to_raw": raw["seconds"] / seconds * rows / raw["rows"], "samples": times}

    # -- peak memory

    def replicate_rss(self) -> None:
        args = self.args
        if args.rss_rows == args.rows:
            parent = Path(self.repositories["large"]["path"])
        else:
            self.say(f"generating the peak-RSS repository (~{args.rss_rows:,} rows)...")
            parent = self.folder / "rss.wmxdb"
            Generator(args, args.seed + 2).build(parent, "Rss", args.rss_rows)
        child = new_child(self.folder / "rss-child.wmxdb", "RssChild")
        self.say("peak RSS of a replicate, in a child process...")
        command = [sys.executable, "-m", "wmx.bench", "--rss-child", str(parent), str(child)]
        if args.page_size:
            command += ["--page-size", str(args.page_size)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the peak-RSS child process failed: {done.stderr.strip()}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        _remove_db(child)
        self.figures["replicate_peak_rss"] = report
        self.say(f"  {report['rows']:,} rows, peak RSS "
                 f"{_fmt(report['peak_rss_mb'], '{:.0f} MB')}")

    # -- synchronize cost

    def sync_scaling(self) -> None:
        args = self.args
        large_child = self.folder / "large-child.wmxdb"  # a replica since replicate_throughput
        small = Path(self.repositories["small"]["path"])
        small_child = new_child(self.folder / "small-child.wmxdb", "SmallChild")
        replicate_once(str(small), str(small_child), "SmallChild", args.page_size)
        cases = (("sync_small", small, small_child, "SmallChild", self.repositories["small"]),
                 ("sync_large", Path(self.repositories["large"]["path"]), large_child,
                  "LargeChild", self.repositories["large"]))
        changeset_reason = bench_changeset.unavailable()
        for key, parent, child, name, info in cases:
            self.say(f"sync of {args.changes} changed jobs in {info['rows']:,} rows...")
            changes: list[list[tuple]] = []
            pair = None if changeset_reason else bench_changeset.ChangesetPair(
                parent, *self._changeset_files(name))
            figure = self.timed_syncs(str(parent), str(child), name, info,
                                      functools.partial(_recorded, parent, child, changes))
            raw_times: list[float] = []
            rng = random.Random(args.seed + 4)
            for _ in range(max(1, args.repeat) + 2):  # last: it leaves the checkpoints behind
                heads = raw_head(parent), raw_head(child)
                self._change_jobs(str(parent), str(child), info["jobs"], rng)
                seconds, _ = _timed(functools.partial(raw_sync, parent, child, *heads))
                raw_times.append(seconds)
            figure.update(raw_seconds=_median(raw_times), raw_samples=raw_times,
                          changeset=self._changeset_figure(pair, changes, figure["seconds"],
                                                           changeset_reason))
            self.figures[key] = figure
            self.say(f"  median {figure['seconds'] * 1000:.0f} ms (raw sqlite3: "
                     f"{figure['raw_seconds'] * 1000:.0f} ms, changeset: "
                     f"{_fmt(figure['changeset'].get('seconds'), '{:.3f} s')})")
        small_figure, large_figure = self.figures["sync_small"], self.figures["sync_large"]
        self.figures["sync_scaling"] = {
            "small_rows": small_figure["rows"], "large_rows": large_figure["rows"],
            "ratio": large_figure["seconds"] / small_figure["seconds"],
            "raw_ratio": large_figure["raw_seconds"] / small_figure["raw_seconds"]}

    def timed_syncs(self, parent: str, child: str, name: str, info: dict[str, Any],
                    recording: Callable[[], contextlib.AbstractContextManager[Any]] =
                    contextlib.nullcontext) -> dict[str, Any]:
        """Two warm-up syncs of the pair, then ``--repeat`` + 2 timed syncs, each after
        ``--changes`` changed jobs (made inside ``recording()``). Parent and child are any
        stores' locations (the PostgreSQL figures use it too); ``info`` is the generated
        repository's (rows, jobs). The figure: rows, changes, median seconds and samples."""
        args = self.args
        rng = random.Random(args.seed + 3)
        targets = [ChildTarget(name, child)]
        for _ in range(2):  # warm-up (and settle checkpoints)
            sync_once(parent, targets, args.page_size)
        times: list[float] = []
        expected = 0
        for _ in range(max(1, args.repeat) + 2):
            with recording():
                expected = self._change_jobs(parent, child, info["jobs"], rng)
            seconds, outcome = _timed(functools.partial(sync_once, parent, targets,
                                                        args.page_size))
            moved = outcome.children[0].pulled.writes + outcome.children[0].pushed.writes
            if moved < expected:
                raise RuntimeError(f"sync moved {moved} rows, expected {expected}")
            times.append(seconds)
        return {"rows": info["rows"], "changed_jobs": args.changes, "changed_rows": expected,
                "seconds": _median(times), "samples": times}

    def _change_jobs(self, parent: str, child: str, jobs: int, rng: random.Random) -> int:
        """Change ``--changes`` jobs (half at the child, half at the parent): a job update
        plus a history entry each. Returns the number of rows the sync must move."""
        count = max(2, self.args.changes)
        picked = rng.sample(range(1, jobs + 1), min(count, jobs))
        with contextlib.closing(open_store(child)) as at_child, \
                contextlib.closing(open_store(parent)) as at_parent:
            for index, job_id in enumerate(picked):
                repository = at_child if index % 2 == 0 else at_parent
                repository.update_job(job_id, user=USER, description=f"edit {rng.random()}")
                repository.log_action(job_id, 7, user=USER, comments="benchmark edit")
        return 2 * len(picked)

    def _changeset_files(self, name: str) -> tuple[Path, Path]:
        files = (self.folder / f"{name}-changeset-recorded.db",
                 self.folder / f"{name}-changeset-applied.db")
        for path in files:
            _remove_db(path)
        return files

    def _changeset_figure(self, pair: Optional[bench_changeset.ChangesetPair],
                          changes: list[list[tuple]], sync_seconds: float,
                          reason: Optional[str]) -> dict[str, Any]:
        """The same changes as the timed syncs moved, each sync's as one changeset (see
        :mod:`wmx.bench_changeset`): median seconds, changeset bytes, sync / changeset."""
        if pair is None:
            return {"skipped": True, "reason": reason}
        try:
            for rows in changes:
                pair.measure(functools.partial(_raw_upsert, rows=rows), settle)
        finally:
            for path in (pair.recorded, pair.applied):
                _remove_db(path)
        seconds = _median(pair.samples)
        return {**bench_changeset.versions(), "seconds": seconds, "samples": pair.samples,
                "bytes": int(_median([float(size) for size in pair.sizes])),
                "changed_rows": _median([float(len(rows)) for rows in changes]),
                "ratio": sync_seconds / seconds}

    # -- no-op sync over HTTP

    def noop_sync_http(self) -> None:
        args = self.args
        if args.skip_http:
            self.figures["noop_sync_http"] = {"skipped": True}
            return
        parent = Path(self.repositories["small"]["path"])
        children = [new_child(self.folder / f"noop-{i}.wmxdb", f"Noop{i}")
                    for i in range(args.noop_children)]
        self.say(f"no-op sync of a parent and {len(children)} children over HTTP...")
        with contextlib.closing(EmbeddedRepository(parent)) as repository:
            _check(replicate(repository, [ChildTarget(f"Noop{i}", str(path))
                                          for i, path in enumerate(children)], _opener),
                   "replicate")
        with served(parent, *children) as urls:
            parent_url, child_urls = urls[0], urls[1:]
            targets = [ChildTarget(f"Noop{i}", url) for i, url in enumerate(child_urls)]
            sync_once(parent_url, targets, args.page_size)  # warm-up
            times = []
            for _ in range(max(1, args.repeat) + 2):
                seconds, outcome = _timed(lambda: sync_once(parent_url, targets,
                                                            args.page_size))
                writes = sum(c.pulled.writes + c.pushed.writes for c in outcome.children)
                if writes:
                    raise RuntimeError(f"the no-op sync wrote {writes} rows")
                times.append(seconds)
        for path in children:
            _remove_db(path)
        self.figures["noop_sync_http"] = {"children": len(children),
                                          "rows": self.repositories["small"]["rows"],
                                          "seconds": _median(times), "samples": times}
        self.say(f"  median {_median(times) * 1000:.0f} ms")

    # -- Esri's server

    def esri_sync(self) -> None:
        """Seconds and requests of the first run against an Esri server and of a sync with
        nothing new, for each size of ``--esri-jobs`` (see :data:`ESRI_ROLE`)."""
        reason = esri_unavailable(self.args)
        if reason is not None:
            self.figures["esri"] = {"skipped": True, "reason": reason}
            self.say(f"Esri figures skipped: {reason}")
            return
        from wmx.remote.esri_client import DEFAULT_CONNECTIONS

        self.figures["esri"] = {"role": ESRI_ROLE, "latency_s": self.args.esri_latency,
                                "connections": DEFAULT_CONNECTIONS,
                                "sizes": [self._esri_size(jobs, DEFAULT_CONNECTIONS)
                                          for jobs in self.args.esri_jobs]}

    def _esri_size(self, jobs: int, connections: int) -> dict[str, Any]:
        args = self.args
        figure = functools.partial(esri_figure, jobs=jobs, latency=args.esri_latency,
                                   connections=connections)
        self.say(f"Esri double with {jobs:,} jobs, {args.esri_latency * 1000:g} ms/request...")
        child = new_child(self.folder / f"esri-child-{jobs}.wmxdb", "EsriChild")
        with EsriDoubleProcess(ESRI_DOUBLE, jobs, args.esri_latency) as double, \
                state_folder(self.folder / f"esri-state-{jobs}"):
            double.requests()  # count from here: populating and starting are not the client's
            timing, rows = _timed_cpu(lambda: replicate_once(double.url, str(child),
                                                             "EsriChild", args.page_size))
            first = figure(timing, double.requests())
            with EmbeddedRepository(child) as repository:
                arrived = len(repository.jobs())
            if arrived != jobs:
                raise RuntimeError(f"replicate from the Esri double brought {arrived} of "
                                   f"{jobs} jobs")
            timing, outcome = _timed_cpu(lambda: sync_once(
                double.url, [ChildTarget("EsriChild", str(child))], args.page_size))
            noop = figure(timing, double.requests())
        writes = sum(c.pulled.writes + c.pushed.writes for c in outcome.children)
        if writes:
            raise RuntimeError(f"the sync with nothing new wrote {writes} rows")
        _remove_db(child)
        for what, run in (("first run", first), ("nothing new", noop)):
            self.say(f"  {what}: {run['seconds']:.2f} s, {run['requests']:,} requests "
                     f"({run['requests_per_job']:.2f} per job); CPU: client "
                     f"{run['client_cpu_s']:.1f} s, double {run['double_cpu_s']:.1f} s; "
                     f"latency floor {run['latency_floor_s']:.1f} s")
        return {"jobs": jobs, "rows": rows, "first_sync": first, "noop_sync": noop}

    def postgres(self) -> None:
        self.figures["postgres"] = bench_postgres.measure(
            self.args, self.repositories, replicate_once, self.timed_syncs, self.say)

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.generate()
        self.replicate_throughput()
        self.replicate_http()
        self.replicate_rss()
        self.sync_scaling()
        self.noop_sync_http()
        self.esri_sync()
        self.postgres()
        return self.results(time.perf_counter() - started)

    def results(self, elapsed: float) -> dict[str, Any]:
        from wmx import __version__

        verdicts = []
        esri = self.figures["esri"]
        largest = max(esri["sizes"], key=lambda size: size["jobs"]) if "sizes" in esri else {}
        measured = {
            "replicate_embedded": self.figures["replicate_embedded"].get("ratio_to_raw"),
            "replicate_http": self.figures["replicate_http"].get("ratio_to_raw"),
            "sync_changeset_small": self.figures["sync_small"]["changeset"].get("ratio"),
            "sync_changeset_large": self.figures["sync_large"]["changeset"].get("ratio"),
            "sync_scaling": self.figures["sync_scaling"]["ratio"],
            "noop_sync_http": self.figures["noop_sync_http"].get("seconds"),
            "replicate_peak_rss": self.figures["replicate_peak_rss"].get("peak_rss_mb"),
            "esri_first_sync": largest.get("first_sync", {}).get("seconds"),
            "esri_noop_sync": largest.get("noop_sync", {}).get("seconds"),
            **bench_postgres.measured(self.figures["postgres"]),
        }
        for key, (unit, op, threshold) in TARGETS.items():
            value = measured[key]
            met = None if value is None else (
                value >= threshold if op == ">=" else
                value <= threshold if op == "<=" else value < threshold)
            verdicts.append({"figure": key, "unit": unit, "target": f"{op} {threshold:g}",
                             "measured": value, "met": met})
            if key.startswith("esri_"):
                verdicts[-1]["jobs"] = largest.get("jobs")
        args = self.args
        return {
            "wmx_version": __version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "json_codec": "orjson" if codec.orjson is not None else "json",
            "parameters": {key: getattr(args, key) for key in (
                "smoke", "rows", "small_rows", "rss_rows", "changes", "noop_children",
                "repeat", "http_repeat", "seed", "history", "holds", "attachments",
                "attachment_bytes", "config_size", "page_size", "skip_http", "esri_jobs",
                "esri_latency", "skip_esri", "skip_postgres", "serve_writes",
                "serve_clients")},
            "repositories": {key: {k: v for k, v in info.items() if k != "path"}
                             for key, info in self.repositories.items()},
            "figures": self.figures,
            "targets": verdicts,
            "all_met": all(v["met"] is not False for v in verdicts),
            "elapsed_s": elapsed,
        }


# --- reporting --------------------------------------------------------------------------------

def _fmt(value: Optional[float], pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def table(results: dict[str, Any]) -> str:
    f = results["figures"]
    raw = f["raw_copy"]
    verdict = {v["figure"]: v for v in results["targets"]}

    def met(key: str) -> str:
        v = verdict[key]
        state = "skipped" if v["measured"] is None else ("yes" if v["met"] else "NO")
        return f"{v['target']:<8} {state}"

    def rate(key: str) -> tuple[str, str]:
        figure = f[key]
        if figure.get("skipped"):
            return "skipped", ""
        return (f"{figure['rows_per_s']:>10,.0f} rows/s  {figure['seconds']:7.2f} s",
                f"{figure['ratio_to_raw']:.2f}")

    def sync(key: str) -> list[tuple[str, str, str, str]]:
        figure, changeset = f[key], f[key]["changeset"]
        verdict = met(f"sync_changeset_{key.split('_')[1]}")
        rows = [(f"sync {figure['changed_jobs']} jobs in {figure['rows']:,} rows",
                 f"{figure['seconds'] * 1000:10.0f} ms",
                 f"{figure['raw_seconds'] / figure['seconds']:.2f}", "")]
        if changeset.get("skipped"):
            return [*rows, ("  same changes as a session changeset",
                            f"skipped ({changeset['reason']})", "", verdict)]
        return [*rows, ("  same changes as a session changeset",
                        f"{changeset['seconds'] * 1000:10.0f} ms  "
                        f"{changeset['bytes']:>7,} bytes", "", "(the limit)"),
                ("  sync time / changeset time", f"{changeset['ratio']:10.2f} x", "",
                 verdict)]

    rows = [
        ("figure", "measured", "vs raw", "target   met"),
        (f"raw sqlite3 copy ({raw['rows']:,} rows)",
         f"{raw['rows_per_s']:>10,.0f} rows/s  {raw['seconds']:7.2f} s", "1.00", "(the limit)"),
        ("replicate embedded -> embedded", *rate("replicate_embedded"),
         met("replicate_embedded")),
        ("replicate over HTTP (loopback)", *rate("replicate_http"), met("replicate_http")),
        *sync("sync_small"), *sync("sync_large"),
        ("  sync time large / small", f"{f['sync_scaling']['ratio']:10.2f} x", "",
         met("sync_scaling")),
        ("  raw sqlite3 sync, large / small", f"{f['sync_scaling']['raw_ratio']:10.2f} x", "",
         "(the limit)"),
    ]
    noop = f["noop_sync_http"]
    rows.append((f"no-op sync, parent + {results['parameters']['noop_children']} "
                 "children over HTTP",
                 "skipped" if noop.get("skipped") else f"{noop['seconds'] * 1000:10.0f} ms",
                 "", met("noop_sync_http")))
    rss = f["replicate_peak_rss"]
    rows.append((f"peak RSS, replicate of {rss['rows']:,} rows",
                 _fmt(rss.get("peak_rss_mb"), "{:10.0f} MB"), "", met("replicate_peak_rss")))
    rows.extend(_esri_rows(f["esri"], verdict, met))
    rows.extend(bench_postgres.table_rows(f["postgres"], met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(f"all targets met: {'yes' if results['all_met'] else 'NO'}   "
                 f"(python {results['python']}, sqlite {results['sqlite']}, "
                 f"{results['json_codec']}, {results['cpus']} CPUs, "
                 f"{results['elapsed_s']:.0f} s in all)")
    return "\n".join(lines)


def _esri_rows(esri: dict[str, Any], verdict: dict[str, Any],
               met: Callable[[str], str]) -> list[tuple[str, str, str, str]]:
    if esri.get("skipped"):
        return [("Esri server (double)", "skipped", "", met("esri_first_sync"))]
    rows = [(f"Esri server (double, {esri['latency_s'] * 1000:g} ms/request, "
             f"{esri['connections']} connections)", "", "", "")]
    for size in esri["sizes"]:
        judged = size["jobs"] == verdict["esri_first_sync"]["jobs"]
        for key, what in (("first_sync", "first run (mirror built)"),
                          ("noop_sync", "nothing new")):
            figure = size[key]
            rows.append((f"  as parent, {size['jobs']:,} jobs: {what}",
                         f"{figure['seconds']:7.2f} s  {figure['requests']:>7,} requests  "
                         f"{figure['requests_per_job']:.2f}/job", "",
                         met(f"esri_{key}") if judged else ""))
    return rows


# --- the peak-RSS child process ----------------------------------------------------------------

def rss_child(args: argparse.Namespace) -> int:
    parent, child = args.rss_child
    seconds, rows = _timed(lambda: replicate_once(parent, child, "RssChild", args.page_size))
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                      "measured_in": "child process"}))
    return 0


# --- entry point -----------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _settings(build_parser().parse_args(argv), argv)
    if args.rss_child:
        return rss_child(args)
    if args.esri_double:
        return esri_double_child(args)
    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        results = Bench(args, args.folder).run()
    else:
        folder = Path(tempfile.mkdtemp(prefix="wmx-bench-"))
        try:
            results = Bench(args, folder).run()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(table(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
