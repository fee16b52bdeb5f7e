"""A throwaway PostgreSQL server for the tests, and one fresh repository schema per test.

The session fixture :func:`postgres_server` uses ``WMX_TEST_POSTGRES`` (a libpq URI of an
existing server) when set; otherwise it finds ``initdb``/``pg_ctl`` (on ``PATH``, then in
``/usr/lib/postgresql/*/bin``) and starts a cluster of its own in a temporary folder, on
127.0.0.1 and a free port, stopped and removed at the end. PostgreSQL refuses to run as root, so
as root (the sandbox and CI) the cluster belongs to the system user ``wmxpg`` (created once)
and its programs run through ``runuser``. Without a server the PostgreSQL tests are skipped,
except under ``WMX_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where they fail.

The cluster asks TCP clients for a password (scram-sha-256), read from a pgpass file the
fixture writes and names in ``PGPASSFILE``, so the password-hygiene tests have a real secret to
look for. Import the fixtures explicitly; never start servers from conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

REQUIRE_VARIABLE = "WMX_REQUIRE_POSTGRES"
SERVER_VARIABLE = "WMX_TEST_POSTGRES"
SYSTEM_USER = "wmxpg"
DATABASE = "wmx_test"
SUPERUSER = "wmx"


@attrs.frozen
class PostgresServer:
    """A running server: ``uri`` names its test database without a password (libpq finds
    it in the pgpass file); ``password`` is the secret behind it, when the fixture knows it."""

    uri: str
    password: Optional[str]
    version: str

    def location(self, schema: str) -> str:
        """The repository location of one schema of the test database."""
        return f"{self.uri}{'&' if '?' in self.uri else '?'}schema={schema}"

    def uri_with_password(self) -> str:
        """The test database's URI with the password written into it (SPEC §2.7 accepts it)."""
        assert self.password is not None
        scheme, user, host = self.parts()
        return f"{scheme}://{user}:{self.password}@{host}"

    def parts(self) -> tuple[str, str, str]:
        """Scheme, user (without any password) and ``host:port/db…`` of :attr:`uri`."""
        scheme, rest = self.uri.split("://", 1)
        user, host = rest.rsplit("@", 1)
        return scheme, user.split(":", 1)[0], host


def find_program(name: str) -> Optional[str]:
    """``initdb``, ``pg_ctl``... on PATH, else from the newest Debian PostgreSQL install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3]) if
                        Path(path).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_owner(command: list[str]) -> list[str]:
    """Run a PostgreSQL program as the cluster's owner (``wmxpg`` when we are root)."""
    return ["runuser", "-u", SYSTEM_USER, "--", *command] if _is_root() else command


def _ensure_system_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
                        SYSTEM_USER], check=True, capture_output=True)


def _run(command: list[str], folder: Path) -> str:
    """Run a PostgreSQL program as the cluster's owner, from the cluster's folder (the owner
    may not enter the current one: a checkout under /root)."""
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120,
                          cwd=folder)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def own_cluster() -> Iterator[PostgresServer]:
    """A new cluster in a temporary folder, removed (with its data) when the block ends."""
    initdb, pg_ctl = find_program("initdb"), find_program("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("initdb/pg_ctl not found (install the postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="wmx-pg-"))
    password = secrets.token_urlsafe(18)
    data = folder / "data"
    try:
        if _is_root():
            _ensure_system_user()
            shutil.chown(folder, SYSTEM_USER)
        password_file = folder / "password"
        password_file.write_text(password + "\n", encoding="utf-8")
        if _is_root():
            shutil.chown(password_file, SYSTEM_USER)
        _run([initdb, "-D", str(data), "-U", SUPERUSER, "--pwfile", str(password_file),
              "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
              "--no-instructions"], folder)
        password_file.unlink()
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -k {data}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=200")
        _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
              "-w", "-t", "60", "start"], folder)
        try:
            pgpass = folder / "pgpass"
            pgpass.write_text(f"127.0.0.1:{port}:*:{SUPERUSER}:{password}\n", encoding="utf-8")
            pgpass.chmod(0o600)
            os.environ["PGPASSFILE"] = str(pgpass)
            admin = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
            _sql(admin, f"CREATE DATABASE {DATABASE}")
            uri = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
            yield PostgresServer(uri, password, _version(uri))
        finally:
            os.environ.pop("PGPASSFILE", None)
            subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                                      "stop"]), capture_output=True, timeout=60, cwd=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sql(uri: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as connection:
        connection.execute(statement)


def _version(uri: str) -> str:
    import psycopg

    with psycopg.connect(uri) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


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
