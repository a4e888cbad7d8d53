"""The ``airflow`` CLI with SQLite transactions that take the write lock when they begin.

The embedded default keeps Airflow's metadata in SQLite (WAL). A transaction that reads and
then writes fails at once with "database is locked" when another process committed in between:
SQLite cannot upgrade a read snapshot that is no longer the newest, whatever the busy timeout.
``airflow backfill create`` (it reads, then inserts run after run) hit it while the scheduler
was running. Beginning each transaction with ``BEGIN IMMEDIATE`` makes it wait for the lock
(up to the connection's ``timeout``) instead; this is SQLAlchemy's documented recipe for
SQLite. Only ``python -m devstack.cli airflow ...`` runs the CLI this way, and only on
SQLite; the Airflow services and PostgreSQL are untouched.

    python -m devstack.airflow_sqlite <airflow arguments>
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from sqlalchemy import event


def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None  # the driver's own deferred BEGIN, off


def _begin_immediate(connection: Any) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def begin_immediate(target: Any) -> None:
    """Make every transaction of `target` (an Engine, or the Engine class) BEGIN IMMEDIATE on SQLite."""
    event.listen(target, "connect", _no_implicit_begin)
    event.listen(target, "begin", _begin_immediate)


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.engine import Engine

    begin_immediate(Engine)  # before Airflow creates its engine
    sys.argv = ["airflow", *(sys.argv[1:] if argv is None else argv)]
    from airflow.__main__ import main as airflow_main

    return airflow_main() or 0


if __name__ == "__main__":
    raise SystemExit(main())
