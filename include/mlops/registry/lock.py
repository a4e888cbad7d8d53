"""One lock per registered model around every move of its ``champion`` alias.

Promotion (the DAG's ``promote`` task) and rollback (the registry CLI) both take it, re-read
the champion under it and only then write, so two promoters, or a promotion and a rollback,
never interleave, whichever DAG, worker or shell they run in.

The lock lives in the database the registry lives in:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on its own
  connection. It never blocks MLflow's own writes, and the server drops it when the holder's
  connection dies (a killed worker cannot leave it taken).
- SQLite (the embedded default): an exclusive ``flock`` on a file beside the database
  (``<database>.champion-<model hash>.lock``); the kernel releases it when the holder exits. A lock inside the SQLite
  file itself would block MLflow's own writes from the same process.

``MLOPS_REGISTRY_LOCK_URI`` names that database when MLflow is reached over HTTP (a
tracking server): point it at the server's backend store. Without a usable lock nothing moves
(fail closed). ``MLOPS_REGISTRY_LOCK_TIMEOUT`` (seconds, default 120) bounds the wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_TIMEOUT_SECONDS = 120.0
_POLL_SECONDS = 0.2


class LockNotTakenError(RuntimeError):
    """The champion lock could not be taken (busy past the timeout, or no lock database)."""


def lock_uri(tracking_uri: str) -> str:
    """The database holding the champion lock for a registry reached at `tracking_uri`."""
    from include.mlops.settings import registry_lock_uri

    explicit = registry_lock_uri()
    if explicit:
        return explicit
    if tracking_uri.startswith(("sqlite:", "postgresql:", "postgresql+")):
        return tracking_uri
    raise LockNotTakenError(
        f"no database to lock for the registry at {tracking_uri!r}: set MLOPS_REGISTRY_LOCK_URI to the "
        "MLflow server's backend store (postgresql://... or sqlite:///...)"
    )


def lock_timeout() -> float:
    from include.mlops.settings import SettingsError, env_number

    try:
        return env_number("MLOPS_REGISTRY_LOCK_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS))
    except SettingsError as exc:
        raise LockNotTakenError(str(exc)) from None


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key per registered model (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(f"mlops.champion:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _postgres_lock(uri: str, name: str, timeout: float) -> Iterator[None]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(uri, poolclass=NullPool)
    try:
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise LockNotTakenError(f"{name}: cannot reach the champion lock's database: {reason}") from exc
        with conn:
            key = _advisory_key(name)
            deadline = time.monotonic() + timeout
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                conn.rollback()
                if time.monotonic() >= deadline:
                    raise LockNotTakenError(f"{name}: another move of champion held its lock for over {timeout:g} s")
                time.sleep(_POLL_SECONDS)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()


def _sqlite_path(uri: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        raise LockNotTakenError(f"cannot lock an in-memory SQLite registry ({uri!r})")
    return Path(database)


@contextlib.contextmanager
def _file_lock(path: Path, name: str, timeout: float) -> Iterator[None]:
    from include.mlops.common.files import FileLockTimeout, exclusive_file_lock

    held = contextlib.ExitStack()
    try:
        held.enter_context(exclusive_file_lock(path, timeout))
    except FileLockTimeout:
        raise LockNotTakenError(
            f"{name}: another move of champion held its lock ({path}) for over {timeout:g} s"
        ) from None
    with held:
        yield


@contextlib.contextmanager
def champion_lock(tracking_uri: str, name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock serialising every move of `name`'s ``champion`` alias."""
    uri = lock_uri(tracking_uri)
    timeout = lock_timeout() if timeout is None else timeout
    if uri.startswith("postgresql"):
        with _postgres_lock(uri, name, timeout):
            yield
    elif uri.startswith("sqlite:"):
        database = _sqlite_path(uri)
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        with _file_lock(database.with_name(f"{database.name}.champion-{digest}.lock"), name, timeout):
            yield
    else:
        raise LockNotTakenError(f"MLOPS_REGISTRY_LOCK_URI must be a postgresql:// or sqlite:/// URI, got {uri!r}")
