"""A throwaway PostgreSQL server for the tests, and one fresh repository schema per test.

The session fixture :func:`postgres_server` uses ``WMX_TEST_POSTGRES`` (a libpq URI of an
existing server) when set; otherwise it starts a throwaway cluster of its own
(:func:`wmx.store.postgres_cluster.own_cluster`: ``initdb``/``pg_ctl`` on ``PATH``, then in
``/usr/lib/postgresql/*/bin``; 127.0.0.1, a free port, stopped and removed at the end).
PostgreSQL refuses to run as root, so as root (the sandbox and CI) the cluster belongs to the
system user ``wmxpg`` (created once) and its programs run through ``runuser``. Without a
server the PostgreSQL tests are skipped, except under ``WMX_REQUIRE_POSTGRES=1`` (set by
``.ci/run``), where they fail.

The cluster asks TCP clients for a password (scram-sha-256), read from a pgpass file the
fixture writes and names in ``PGPASSFILE``, so the password-hygiene tests have a real secret to
look for. Import the fixtures explicitly; never start servers from conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from wmx.store.postgres_cluster import (  # noqa: F401  (re-exported for the tests)
    DATABASE,
    SUPERUSER,
    SYSTEM_USER,
    PostgresServer,
    find_program,
    own_cluster,
)
from wmx.store.postgres_cluster import free_port as _free_port  # noqa: F401
from wmx.store.postgres_cluster import server_version as _version
from wmx.store.postgres_cluster import sql as _sql

REQUIRE_VARIABLE = "WMX_REQUIRE_POSTGRES"
SERVER_VARIABLE = "WMX_TEST_POSTGRES"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"PostgreSQL is required here ({REQUIRE_VARIABLE}=1) but {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


def _announce(config: pytest.Config, text: str) -> None:
    """Print past pytest's capture, so the CI log shows which server the tests used."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{text}", file=sys.stderr, flush=True)


_SESSION: dict[str, Any] = {}
"""The one server of this test session, whichever modules ask for it (each module that
imports the fixture gets a fixture of its own, so the server itself is kept here), or the
reason there is none."""


def _session_server(config: pytest.Config) -> PostgresServer:
    if "server" in _SESSION:
        return _SESSION["server"]
    if "unavailable" in _SESSION:
        _unavailable(_SESSION["unavailable"])
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        _SESSION["unavailable"] = ("psycopg/psycopg_pool are not installed "
                                   "(pip install 'wmx[postgresql]')")
        _unavailable(_SESSION["unavailable"])
    existing = os.environ.get(SERVER_VARIABLE)
    if existing:
        from psycopg.conninfo import conninfo_to_dict

        server = PostgresServer(existing, conninfo_to_dict(existing).get("password"),
                                _version(existing))
        _announce(config, f"PostgreSQL {server.version} ({SERVER_VARIABLE}) for the tests")
    else:
        cluster = own_cluster()
        try:
            server = cluster.__enter__()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            _SESSION["unavailable"] = str(exc)
            _unavailable(str(exc))
        config.add_cleanup(lambda: cluster.__exit__(None, None, None))
        _announce(config, f"PostgreSQL {server.version} started for the tests ({server.uri})")
    _SESSION["server"] = server
    config.add_cleanup(_drop_made_schemas)  # runs before the server's own cleanup (LIFO)
    return server


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> PostgresServer:
    """The session's PostgreSQL server (skipped without one, failed under the CI flag)."""
    return _session_server(pytestconfig)


def drop_schema(server: PostgresServer, schema: str) -> None:
    _sql(server.uri, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_location(postgres_server: PostgresServer) -> Iterator[str]:
    """The location of a schema no repository uses yet (dropped after the test)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.location(schema)
    drop_schema(postgres_server, schema)


# --- repositories the guarantee suites make (clusters, templates, backups) ---------------------

def session_server(config: Optional[pytest.Config] = None) -> PostgresServer:
    """The session's server: started now if ``config`` is given (as :func:`postgres_server`
    does: skipped or failed without one), else the one a test's fixture already started."""
    if config is not None:
        return _session_server(config)
    server = _SESSION.get("server")
    if server is None:
        raise RuntimeError("no PostgreSQL server in this session: request postgres_server")
    return server


def new_location(prefix: str = "g") -> str:
    """The location of a schema no repository uses yet, dropped at the end of the session
    (or earlier with :func:`drop_location`)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _SESSION.setdefault("schemas", set()).add(schema)
    return session_server().location(schema)


def schema_of(location: str) -> str:
    from wmx.store.postgres_location import PostgresLocation

    return PostgresLocation.parse(location).schema


def drop_location(location: str) -> None:
    schema = schema_of(location)
    drop_schema(session_server(), schema)
    _SESSION.get("schemas", set()).discard(schema)


def _drop_made_schemas() -> None:
    server = _SESSION.get("server")
    schemas = sorted(_SESSION.pop("schemas", set()))
    if server is not None and schemas:
        _sql(server.uri, "DROP SCHEMA IF EXISTS "
             + ", ".join(f'"{schema}"' for schema in schemas) + " CASCADE")


def copy_repository(source: str, target: str) -> None:
    """Make ``target``'s schema an exact copy of ``source``'s repository (what a byte copy of
    a file is to an embedded one: a template copied, a backup taken or put back), in one
    transaction. Identity counters continue where the source's stand."""
    import psycopg
    from psycopg import sql

    source_schema, target_schema = schema_of(source), schema_of(target)
    _SESSION.setdefault("schemas", set()).add(target_schema)
    with psycopg.connect(session_server().uri) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}")
                           .format(sql.Identifier(target_schema)))
        columns = connection.execute(
            "SELECT c.table_name, c.column_name, c.is_identity FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'"
            " AND c.is_generated = 'NEVER' ORDER BY c.table_name, c.ordinal_position",
            (source_schema,)).fetchall()
        tables: dict[str, list[tuple[str, bool]]] = {}
        for table, column, identity in columns:
            tables.setdefault(table, []).append((column, identity == "YES"))
        for table, table_columns in tables.items():
            source_table = sql.Identifier(source_schema, table)
            target_table = sql.Identifier(target_schema, table)
            names = sql.SQL(", ").join(sql.Identifier(column) for column, _ in table_columns)
            connection.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)")
                               .format(target_table, source_table))
            connection.execute(sql.SQL("INSERT INTO {0} ({1}) OVERRIDING SYSTEM VALUE"
                                       " SELECT {1} FROM {2}")
                               .format(target_table, names, source_table))
            for column, identity in table_columns:
                if identity:
                    connection.execute(sql.SQL(
                        "SELECT setval(pg_get_serial_sequence(%s, %s),"
                        " COALESCE((SELECT MAX({0}) FROM {1}), 0) + 1, false)")
                        .format(sql.Identifier(column), target_table),
                        (f'"{target_schema}"."{table}"', column))
