"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started and stopped here.

Production keeps the Airflow metadata database and the MLflow backend store on PostgreSQL, so
the registry, promotion and rollback tests and one full pipeline run use a real server:

- its own data directory under ``.local/postgres-test/`` (removed afterwards), a free port on
  127.0.0.1, no Unix socket, trust authentication for the one local user;
- as root (CI containers) the server runs as the package's ``postgres`` user: ``initdb`` and
  ``postgres`` refuse to run as root.

``make test`` installs the package when it is missing (the ``postgres-server`` target). When
the binaries are still absent the tests that need them are skipped, except under ``CI`` where
they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER = "mlops"


def server_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).resolve().parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path, root: Path):
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self._as_postgres:
            cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self) -> None:
        self.root.mkdir(parents=True)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
            "-c max_connections=200",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name


def start_or_skip() -> PostgresServer:
    bindir = server_bin()
    if bindir is None:
        reason = "PostgreSQL server binaries missing: `make test` installs Debian's postgresql package"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bindir, ROOT / ".local" / "postgres-test" / f"{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        raise AssertionError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
            return server
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"PostgreSQL is not listening on {server.port}")
