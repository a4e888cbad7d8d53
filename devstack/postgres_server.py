"""A PostgreSQL server of this machine's own (Debian's ``postgresql`` package), run from a directory.

Used by ``make up`` (the production-shaped local stack, data under ``.local/stack/``) and by the
tests. Listens on 127.0.0.1 only, no Unix socket. As root (containers, CI) the server runs as
the package's ``postgres`` user: ``initdb`` and ``postgres`` refuse to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path


class PostgresNotInstalledError(RuntimeError):
    pass


class PostgresError(RuntimeError):
    """A PostgreSQL command failed; the message carries its last error line."""


def server_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).resolve().parent if which else None


class LocalPostgres:
    def __init__(self, root: Path, port: int, user: str, password: str | None = None, bindir: Path | None = None):
        bindir = bindir or server_bin()
        if bindir is None:
            raise PostgresNotInstalledError(
                "PostgreSQL server not found: install Debian's postgresql package (apt-get install postgresql)"
            )
        self.bindir = bindir
        self._as_postgres = os.geteuid() == 0
        self.root = Path(root)
        if self._as_postgres and not self._reachable(self.root):
            # A checkout in a root-only directory (mktemp -d): the server's user cannot enter it,
            # so its data lives in that user's home instead, one folder per intended location.
            home = Path(pwd.getpwnam("postgres").pw_dir)
            self.root = home / "mlops" / hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        self.data = self.root / "data"
        self.port = port
        self.user = user
        self.password = password

    def _reachable(self, path: Path) -> bool:
        """Whether the server's user can reach `path` (its nearest existing ancestor, when new)."""
        probe = Path(path).resolve()
        while not probe.exists():
            probe = probe.parent
        return subprocess.run(self._as_server_user(["test", "-x", str(probe)])).returncode == 0

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        if self._as_postgres:
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]
        return cmd

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(
            self._as_server_user([str(self.bindir / argv[0]), *argv[1:]]), capture_output=True, text=True
        )
        if check and out.returncode != 0:
            lines = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
            raise PostgresError(f"{argv[0]} failed (exit {out.returncode}): {lines[-1]}")
        return out

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            if subprocess.run(self._as_server_user(["test", "-w", str(self.root)])).returncode != 0:
                raise PostgresError(
                    f"the postgres user cannot reach {self.root} (a parent directory is private to root); "
                    "put MLOPS_HOME under a directory other users can traverse"
                )
        auth = ["--auth=trust"]
        pwfile = self.root / ".pwfile"
        if self.password:
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.password + "\n")
            if self._as_postgres:
                os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, *auth, "--encoding=UTF8")
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, durable: bool = True) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
        if not durable:  # throwaway test servers: skip fsync
            options += " -c fsync=off"
        log = self.root / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")

    def running(self) -> bool:
        return self.initialized() and self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        secret = f":{self.password}" if self.password else ""
        return f"{driver}://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def ensure_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name
