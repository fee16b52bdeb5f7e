"""The PostgreSQL figures of the benchmark (``python -m wmx.bench``; SPEC §4):

* **replicate embedded → PostgreSQL** against the **raw limit**: the rows of the large parent's
  ``elements`` table (the raw sqlite copy's columns) read with ``sqlite3`` and ``COPY … FROM
  STDIN``-ed with psycopg into a plain table of the store's element-table definition, in a
  scratch schema, one transaction. Rows/s of both and their ratio (target ≥ 0.5), medians over
  ``--repeat`` after a warm-up of each;
* **sync with a PostgreSQL child**: the SQLite sync figure's measurement (``Bench.timed_syncs``:
  the same changed jobs, the same repeats) between each embedded parent (10,000 and N rows)
  and a PostgreSQL replica of it, and the ratio large / small (no target of its own);
* **REST writes through ``wmx serve``**: a fixed number of ``jobs/create`` POSTs (Esri's
  documented call) from a fixed number of client threads, through one real ``wmx serve``
  process on a PostgreSQL repository, then spread over two such processes on the same
  repository (same requests, same threads). Writes/s of both and the ratio two / one (target
  ≥ 1.5 on 2 cores).

The server: ``--postgres URI`` or ``WMX_BENCH_POSTGRES`` (a libpq URI; scratch schemas are made
in its database and dropped at the end), else a throwaway cluster
(:func:`wmx.store.postgres_cluster.own_cluster`) when ``initdb``/``pg_ctl`` are found. Without
either, or without psycopg, or with ``--skip-postgres``, the figures are reported skipped with
the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode, urlsplit

from wmx import bench_serve
from wmx.model.changes import ROW_FIELDS

SERVER_VARIABLE = "WMX_BENCH_POSTGRES"
USER = "wmxbench"
TARGETS = {
    "replicate_postgres": ("ratio to raw COPY", ">=", 0.50),
    "serve_postgres_scaling": ("two / one serve processes", ">=", 1.50),
}
"""SPEC §4: figure -> (unit, comparison, threshold)."""
SMOKE = {"serve_writes": 40, "serve_clients": 4}
COLUMNS = (*ROW_FIELDS, "seq")

Replicator = Callable[[str, str, str, Optional[int]], int]
"""``replicate_once(parent, child, name, page_size)`` -> rows loaded (wmx.bench's)."""
SyncTimer = Callable[[str, str, str, dict[str, Any]], dict[str, Any]]
"""``Bench.timed_syncs(parent, child, name, repository)`` -> the sync figure (wmx.bench's)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postgres", metavar="URI", default=None,
                        help=f"PostgreSQL server for the PostgreSQL figures (libpq URI; default "
                             f"${SERVER_VARIABLE}, else a throwaway cluster when initdb and "
                             "pg_ctl are found)")
    parser.add_argument("--skip-postgres", action="store_true",
                        help="skip the PostgreSQL figures")
    parser.add_argument("--serve-writes", type=int, default=2_000,
                        help="jobs/create writes per measured wmx serve run (default 2000)")
    parser.add_argument("--serve-clients", type=int, default=8,
                        help="client threads driving the wmx serve writes (default 8)")


# --- the server --------------------------------------------------------------------------------

@contextlib.contextmanager
def postgres_server(args: argparse.Namespace) -> Iterator[tuple[Optional[str], str]]:
    """``(uri, where it came from)``, or ``(None, why there is none)``."""
    if args.skip_postgres:
        yield None, "--skip-postgres"
        return
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        yield None, "psycopg/psycopg_pool are not installed (pip install 'wmx[postgresql]')"
        return
    given = args.postgres or os.environ.get(SERVER_VARIABLE)
    if given:
        yield given, "--postgres" if args.postgres else SERVER_VARIABLE
        return
    from wmx.store.postgres_cluster import own_cluster

    cluster = own_cluster(database="wmx_bench")
    try:
        server = cluster.__enter__()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        yield None, f"no server given and no throwaway cluster: {exc}"
        return
    try:
        yield server.uri, f"throwaway cluster (PostgreSQL {server.version})"
    finally:
        cluster.__exit__(None, None, None)


def _location(uri: str, schema: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}schema={schema}"


class Schemas:
    """Scratch schemas of one run, all dropped at the end."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.made: list[str] = []

    def new(self, prefix: str) -> str:
        schema = f"wmxbench_{prefix}_{uuid.uuid4().hex[:10]}"
        self.made.append(schema)
        return schema

    def drop(self, schema: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                               .format(sql.Identifier(schema)))

    def drop_all(self) -> None:
        for schema in self.made:
            self.drop(schema)
        self.made.clear()


# --- the figures -------------------------------------------------------------------------------

def raw_copy(parent: Path, uri: str, schema: str) -> int:
    """The limit: the parent's element rows (same columns as bench.raw_copy) read with sqlite3
    and COPY-ed into a fresh plain table of the store's element definition, one transaction."""
    import psycopg
    from psycopg import sql

    from wmx.store import postgres

    names = ", ".join(COLUMNS)
    with contextlib.closing(sqlite3.connect(str(parent), isolation_level=None)) as source, \
            psycopg.connect(uri) as target:
        target.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}")
                       .format(sql.Identifier(schema)))
        target.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        target.execute(postgres._ELEMENT_TABLE.format(table="elements", key=" PRIMARY KEY"))
        source.execute("BEGIN")
        rows = source.execute(f"SELECT {names} FROM elements")
        with target.cursor() as cursor, cursor.copy(
                f"COPY elements ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        count = target.execute("SELECT COUNT(*) FROM elements").fetchone()
        source.execute("COMMIT")
        target.commit()
    return int(count[0]) if count else 0


def new_child(uri: str, schemas: Schemas, name: str) -> str:
    """The location of a new, empty child repository in a scratch schema."""
    from wmx.repository.setup import initialise

    child = _location(uri, schemas.new("child"))
    initialise(child, name=name, config="minimum", admin=USER).close()
    return child


def replicate_figure(args: argparse.Namespace, parent: Path, child: str, uri: str,
                     schemas: Schemas, replicate_once: Replicator,
                     say: Callable[[str], None]) -> dict[str, Any]:
    """``child``: a :func:`new_child` named ``PgChild``, the large parent's replica after."""
    say("raw COPY into PostgreSQL vs replicate embedded -> PostgreSQL...")
    raw_schema = schemas.new("raw")
    raw_copy(parent, uri, raw_schema)  # warm-up of both
    replicate_once(str(parent), child, "PgChild", args.page_size)
    raw_times, wmx_times = [], []
    rows = 0
    for _ in range(max(1, args.repeat)):
        started = time.perf_counter()
        rows = raw_copy(parent, uri, raw_schema)
        raw_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        loaded = replicate_once(str(parent), child, "PgChild", args.page_size)
        wmx_times.append(time.perf_counter() - started)
        if loaded != rows:
            raise RuntimeError(f"replicate to PostgreSQL loaded {loaded} rows, COPY {rows}")
        say(f"  raw COPY {raw_times[-1]:.2f} s, replicate {wmx_times[-1]:.2f} s")
    schemas.drop(raw_schema)
    raw, seconds = statistics.median(raw_times), statistics.median(wmx_times)
    return {
        "raw_copy": {"rows": rows, "seconds": raw, "rows_per_s": rows / raw,
                     "samples": raw_times},
        "replicate": {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
                      "ratio_to_raw_copy": raw / seconds, "samples": wmx_times},
    }


def sync_figure(args: argparse.Namespace, repositories: dict[str, dict[str, Any]],
                large_child: str, uri: str, schemas: Schemas, replicate_once: Replicator,
                timed_syncs: SyncTimer, say: Callable[[str], None]) -> dict[str, Any]:
    """The SQLite sync figures' measurement (same changes, same repeats) with a PostgreSQL
    child of each embedded parent: ``large_child`` already replicates the large one, the
    small one is replicated into a new schema first. Both syncs and large / small."""
    small_child = new_child(uri, schemas, "PgSmallChild")
    replicate_once(repositories["small"]["path"], small_child, "PgSmallChild", args.page_size)
    figures: dict[str, Any] = {}
    for key, child, name in (("small", small_child, "PgSmallChild"),
                             ("large", large_child, "PgChild")):
        info = repositories[key]
        say(f"sync of {args.changes} changed jobs in {info['rows']:,} rows, embedded parent, "
            "PostgreSQL child...")
        figures[key] = timed_syncs(info["path"], child, name, info)
        say(f"  median {figures[key]['seconds'] * 1000:.0f} ms")
    return {**figures, "ratio": figures["large"]["seconds"] / figures["small"]["seconds"]}


def drive_writes(urls: list[str], writes: int, clients: int) -> float:
    """``writes`` jobs/create POSTs from ``clients`` threads, thread i on ``urls[i % n]``, each
    thread with a keep-alive connection of its own; the wall-clock seconds of them all. The
    client is ``http.client`` with the form encoded once: the load generator shares the two
    cores with the servers and PostgreSQL, and ``requests`` spent as much CPU per write as
    PostgreSQL did, crowding out the very servers it measures."""
    clients = max(1, min(clients, writes))
    shares = [writes // clients + (1 if index < writes % clients else 0)
              for index in range(clients)]
    failures: list[str] = []
    start = threading.Barrier(clients + 1)
    form = urlencode({"f": "json", "user": USER, "jobTypeId": 1, "numJobs": 1}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def client(index: int) -> None:
        url = urlsplit(f"{urls[index % len(urls)]}/jobs/create")
        connection = http.client.HTTPConnection(url.netloc, timeout=60)
        try:
            start.wait()
            for _ in range(shares[index]):
                connection.request("POST", url.path, body=form, headers=headers)
                body = json.loads(connection.getresponse().read())
                if not body.get("jobIds"):
                    failures.append(str(body)[:300])
                    return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(index,), daemon=True)
               for index in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"jobs/create through wmx serve failed: {failures[0]}")
    return seconds


def _spent(before: list[Optional[float]], after: list[Optional[float]]) -> Optional[float]:
    """CPU seconds the server processes used between two readings (None if unreadable)."""
    pairs = [(b, a) for b, a in zip(before, after) if b is not None and a is not None]
    return sum(a - b for b, a in pairs) if len(pairs) == len(before) else None


def _busy_cores(before: Optional[tuple[float, float]],
                after: Optional[tuple[float, float]]) -> Optional[float]:
    """How many of the machine's cores were busy between two readings, on average."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def serve_figure(args: argparse.Namespace, uri: str, schemas: Schemas,
                 say: Callable[[str], None]) -> dict[str, Any]:
    from wmx.repository.setup import initialise

    writes, clients = max(1, args.serve_writes), max(1, args.serve_clients)
    say(f"REST writes through wmx serve on PostgreSQL: {writes:,} jobs/create from "
        f"{clients} client threads, one process vs two...")
    location = _location(uri, schemas.new("serve"))
    initialise(location, name="BenchServe", config="quick", admin=USER).close()
    one_times: list[float] = []
    two_times: list[float] = []
    cpu: dict[str, list[Optional[float]]] = {"one_process": [], "two_processes": []}
    postgres_cpu: dict[str, list[Optional[float]]] = {"one_process": [], "two_processes": []}
    busy: dict[str, list[Optional[float]]] = {"one_process": [], "two_processes": []}
    with contextlib.ExitStack() as stack:
        servers = [bench_serve.ServeProcess(location)]
        stack.callback(servers[0].close)
        servers.append(bench_serve.ServeProcess(location))
        stack.callback(servers[1].close)
        urls = [server.url for server in servers]
        drive_writes(urls, min(writes, 4 * clients), clients)  # warm-up of both processes
        runs = (("one_process", one_times, servers[:1]), ("two_processes", two_times, servers))
        for repeat in range(max(1, args.repeat)):
            # each write makes the repository bigger: which goes first alternates
            for key, times, used in runs[::-1] if repeat % 2 else runs:
                before = [server.cpu_seconds() for server in used]
                postgres_before = bench_serve.postgres_cpu_seconds()
                machine_before = bench_serve.machine_cpu_seconds()
                times.append(drive_writes([server.url for server in used], writes, clients))
                after = [server.cpu_seconds() for server in used]
                cpu[key].append(_spent(before, after))
                postgres_cpu[key].append(_spent([postgres_before],
                                                [bench_serve.postgres_cpu_seconds()]))
                busy[key].append(_busy_cores(machine_before, bench_serve.machine_cpu_seconds()))
            say(f"  one process {one_times[-1]:.2f} s, two {two_times[-1]:.2f} s")
    one, two = statistics.median(one_times), statistics.median(two_times)
    return {
        "writes": writes, "clients": clients, "cpus": os.cpu_count(),
        **{key: {"seconds": seconds, "writes_per_s": writes / seconds, "samples": samples,
                 "server_cpu_s": cpu[key], "postgres_cpu_s": postgres_cpu[key],
                 "machine_busy_cores": busy[key]}
           for key, seconds, samples in (("one_process", one, one_times),
                                         ("two_processes", two, two_times))},
        "ratio": one / two,
    }


def measure(args: argparse.Namespace, repositories: dict[str, dict[str, Any]],
            replicate_once: Replicator, timed_syncs: SyncTimer,
            say: Callable[[str], None]) -> dict[str, Any]:
    """The ``postgres`` figures of the results: ``{"skipped": True, "reason": ...}`` without
    a server, else the server's origin, ``raw_copy``, ``replicate``, ``sync`` and ``serve``.
    ``repositories``: the benchmark's generated ``small`` and ``large`` ones (path, rows,
    jobs)."""
    with postgres_server(args) as (uri, origin):
        if uri is None:
            say(f"PostgreSQL figures skipped: {origin}")
            return {"skipped": True, "reason": origin}
        say(f"PostgreSQL: {origin}")
        schemas = Schemas(uri)
        try:
            figures: dict[str, Any] = {"server": origin}
            child = new_child(uri, schemas, "PgChild")
            figures.update(replicate_figure(args, Path(repositories["large"]["path"]), child,
                                            uri, schemas, replicate_once, say))
            figures["sync"] = sync_figure(args, repositories, child, uri, schemas,
                                          replicate_once, timed_syncs, say)
            figures["serve"] = serve_figure(args, uri, schemas, say)
        finally:
            schemas.drop_all()
        return figures


def measured(figures: dict[str, Any]) -> dict[str, Optional[float]]:
    """The values the :data:`TARGETS` judge (None when skipped)."""
    if figures.get("skipped"):
        return {key: None for key in TARGETS}
    return {"replicate_postgres": figures["replicate"]["ratio_to_raw_copy"],
            "serve_postgres_scaling": figures["serve"]["ratio"]}


def table_rows(figures: dict[str, Any],
               met: Callable[[str], str]) -> list[tuple[str, str, str, str]]:
    """The PostgreSQL rows of the benchmark's table."""
    if figures.get("skipped"):
        return [("PostgreSQL", f"skipped ({figures['reason']})", "",
                 met("replicate_postgres"))]
    raw, copied, serve = figures["raw_copy"], figures["replicate"], figures["serve"]
    rows = [
        (f"raw COPY into PostgreSQL ({raw['rows']:,} rows)",
         f"{raw['rows_per_s']:>10,.0f} rows/s  {raw['seconds']:7.2f} s", "1.00", "(the limit)"),
        ("replicate embedded -> PostgreSQL",
         f"{copied['rows_per_s']:>10,.0f} rows/s  {copied['seconds']:7.2f} s",
         f"{copied['ratio_to_raw_copy']:.2f}", met("replicate_postgres")),
        (f"REST jobs/create, {serve['writes']:,} writes, {serve['clients']} clients: "
         "one wmx serve", _writes(serve["one_process"]), "", ""),
        ("  cores busy: servers, PostgreSQL, machine", _cores(serve["one_process"]), "", ""),
        ("  two wmx serve processes, one PostgreSQL repository",
         _writes(serve["two_processes"]), "", ""),
        ("  cores busy: servers, PostgreSQL, machine", _cores(serve["two_processes"]), "", ""),
        ("  writes/s two / one", f"{serve['ratio']:10.2f} x", "", met("serve_postgres_scaling")),
    ]
    sync = figures["sync"]
    rows[2:2] = [
        *((f"sync {sync[key]['changed_jobs']} jobs in {sync[key]['rows']:,} rows, "
           "PostgreSQL child", f"{sync[key]['seconds'] * 1000:10.0f} ms", "", "")
          for key in ("small", "large")),
        ("  sync time large / small", f"{sync['ratio']:10.2f} x", "", "(no target)")]
    return rows


def _writes(run: dict[str, Any]) -> str:
    return f"{run['writes_per_s']:>10,.0f} writes/s"


def _cores(run: dict[str, Any]) -> str:
    """Where the cores went during a run: the wmx serve processes, PostgreSQL (a throwaway
    cluster on this machine) and the whole machine, busy cores of all; ``?`` where this
    platform cannot tell."""
    def median(key: str, per_second: bool = True) -> str:
        known = [value for value in run.get(key, []) if value is not None]
        if not known:
            return "?"
        return f"{statistics.median(known) / (run['seconds'] if per_second else 1):.2f}"

    return (f"{median('server_cpu_s')}, {median('postgres_cpu_s')}, "
            f"{median('machine_busy_cores', per_second=False)} of {os.cpu_count()}")
