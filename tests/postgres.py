"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started and stopped here.

Production keeps the Airflow metadata database and the MLflow backend store on PostgreSQL, so
the registry, promotion and rollback tests and one full pipeline run use a real server
(``devstack/postgres_server.py``, the same code ``make up`` runs):

- its own data directory under ``.local/postgres-test/`` (removed afterwards), a free port on
  127.0.0.1, no Unix socket, trust authentication for the one local user;
- as root (CI containers) the server runs as the package's ``postgres`` user.

``make test`` installs the package when it is missing (the ``postgres-server`` target). When
the binaries are still absent the tests that need them are skipped, except under ``CI`` where
they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest

from devstack.embedded_stack import free_port
from devstack.postgres_server import LocalPostgres, PostgresError, server_bin

ROOT = Path(__file__).resolve().parents[1]
USER = "mlops"


class PostgresServer(LocalPostgres):
    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        return self.ensure_database(f"{prefix}_{uuid.uuid4().hex[:10]}")


def start_or_skip() -> PostgresServer:
    bindir = server_bin()
    if bindir is None:
        reason = "PostgreSQL server binaries missing: `make test` installs Debian's postgresql package"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = ROOT / ".local" / "postgres-test" / f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    server = PostgresServer(root, free_port(), USER, bindir=bindir)
    try:
        server.init()
        server.start(durable=False)
    except PostgresError as exc:
        server.stop()
        raise AssertionError(f"PostgreSQL did not start: {exc}") from exc
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
            return server
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"PostgreSQL is not listening on {server.port}")
