"""A throwaway PostgreSQL cluster: ``initdb`` + ``pg_ctl`` in a temporary folder, on 127.0.0.1
and a free port, stopped and removed (with its data) when the block ends.

Used by the benchmark (``python -m wmx.bench``) and the test suite's PostgreSQL fixtures.
``initdb``/``pg_ctl`` are looked for on ``PATH``, then in ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root, so as root the cluster belongs to the system user ``wmxpg``
(created once) and its programs run through ``runuser``. TCP clients are asked for a password
(scram-sha-256), read from a pgpass file named in ``PGPASSFILE`` for the life of the cluster
(so subprocesses started meanwhile, e.g. ``wmx serve``, find it too).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import attrs

SYSTEM_USER = "wmxpg"
DATABASE = "wmx_test"
SUPERUSER = "wmx"


@attrs.frozen
class PostgresServer:
    """A running server: ``uri`` names its database without a password (libpq finds it in
    the pgpass file); ``password`` is the secret behind it, when known."""

    uri: str
    password: Optional[str]
    version: str

    def location(self, schema: str) -> str:
        """The repository location of one schema of the database."""
        return f"{self.uri}{'&' if '?' in self.uri else '?'}schema={schema}"

    def uri_with_password(self) -> str:
        """The database's URI with the password written into it (SPEC §2.7 accepts it)."""
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


def free_port() -> int:
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
def own_cluster(database: str = DATABASE) -> Iterator[PostgresServer]:
    """A new cluster in a temporary folder, removed (with its data) when the block ends.
    Raises FileNotFoundError without ``initdb``/``pg_ctl``, RuntimeError when one fails."""
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
        port = free_port()
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
            sql(admin, f"CREATE DATABASE {database}")
            uri = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"
            yield PostgresServer(uri, password, server_version(uri))
        finally:
            os.environ.pop("PGPASSFILE", None)
            subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                                      "stop"]), capture_output=True, timeout=60, cwd=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sql(uri: str, statement: str) -> None:
    """Run one statement in autocommit mode."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as connection:
        connection.execute(statement)


def server_version(uri: str) -> str:
    import psycopg

    with psycopg.connect(uri) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"
