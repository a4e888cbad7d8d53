"""``make up`` / ``make down``: the production shape on this machine, every service on 127.0.0.1.

- PostgreSQL (Debian's package; data under ``.local/stack/postgres``): Airflow's metadata
  database and MLflow's backend store (and the champion lock);
- an MLflow tracking server on it, basic auth, artifacts proxied by the server;
- the Airflow 3 services as separate processes (api-server, scheduler, dag-processor,
  triggerer; LocalExecutor) sharing one JWT secret, API secret key and Fernet key;
- the GX Data Docs site, which the ``Data Docs`` task links point at.

Credentials come from ``.local/stack/stack.env`` (``devstack.stack_env``: generated once,
mode 0600, the file ``docker-compose.yaml`` reads too); Airflow generates the ``admin``
password into ``.local/stack/airflow-passwords.json``. Ports: ``MLOPS_UP_AIRFLOW_PORT`` (8080),
``MLOPS_UP_MLFLOW_PORT`` (5000), ``MLOPS_UP_DOCS_PORT`` (8081), ``MLOPS_UP_PG_PORT`` (5433).

``up`` starts what is not running and is a no-op when everything is; ``down`` stops exactly
the processes ``up`` started (each service leads its own session; everything in those
sessions), then PostgreSQL.

    python -m devstack.up_stack up|down|status|password
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.postgres_server import PostgresError
from include.mlops.settings import Settings, get_settings

SERVICES = (
    "mlflow",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "data-docs",
)
MARKER = "MLOPS_UP_STACK"

# MLflow's basic auth checks the password's scrypt hash on every request: about 0.1-0.2 s of
# CPU each on this machine, for every call a task or trainer makes. Its opt-in cache skips the
# check for a login seen in the last minute; the cost is that a password changed or a user
# deleted still works for up to that long in a worker that cached it.
MLFLOW_AUTH_CACHE_SECONDS = 60
# The MLflow server's own job runners (GenAI scorers, trace rollups: two huey consumers with
# five workers each, polling) are not used here.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_auth_ini(path: Path, database_uri: str, username: str, password: str) -> Path:
    """Write the basic-auth app's config (mode 0600: it holds the admin password)."""
    import configparser

    ini = configparser.ConfigParser()
    ini["mlflow"] = {
        "default_permission": "READ",
        "database_uri": database_uri,
        "admin_username": username,
        "admin_password": password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(MLFLOW_AUTH_CACHE_SECONDS),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        ini.write(fh)
    return path


class StackError(RuntimeError):
    pass


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit():
        raise StackError(f"{name} must be a port number, got {raw!r}")
    return int(raw)


class UpStack:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.root = self.settings.home / "stack"
        self.pids = self.root / "pids"
        self.logs = self.root / "logs"
        self.airflow_port = _port("MLOPS_UP_AIRFLOW_PORT", 8080)
        self.mlflow_port = _port("MLOPS_UP_MLFLOW_PORT", 5000)
        self.docs_port = _port("MLOPS_UP_DOCS_PORT", 8081)
        self.pg_port = _port("MLOPS_UP_PG_PORT", 5433)
        self.passwords_file = self.root / "airflow-passwords.json"
        self.docs_site = self.settings.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"

    # -- pieces ------------------------------------------------------------------------

    @functools.cached_property
    def _settings_file(self) -> dict[str, str]:
        from devstack.stack_env import ensure_stack_env

        return ensure_stack_env(self.root / "stack.env")

    def _values(self) -> dict[str, str]:
        return self._settings_file

    def postgres(self):
        from devstack.postgres_server import LocalPostgres

        return LocalPostgres(self.root / "postgres", self.pg_port, "airflow", self._values()["POSTGRES_PASSWORD"])

    def urls(self) -> dict[str, str]:
        return {
            "airflow": f"http://127.0.0.1:{self.airflow_port}",
            "mlflow": f"http://127.0.0.1:{self.mlflow_port}",
            "data_docs": f"http://127.0.0.1:{self.docs_port}",
        }

    def env(self) -> dict[str, str]:
        """The environment of every stack process (and of a shell that talks to the stack)."""
        from devstack.embedded import embedded_env

        values, pg, urls = self._values(), self.postgres(), self.urls()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MLOPS_REGISTRY"))}
        base.update(
            {
                MARKER: str(self.root),
                "AIRFLOW_HOME": str(self.root / "airflow"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow"),
                "AIRFLOW__CORE__FERNET_KEY": values["AIRFLOW__CORE__FERNET_KEY"],
                "AIRFLOW__API_AUTH__JWT_SECRET": values["AIRFLOW__API_AUTH__JWT_SECRET"],
                "AIRFLOW__API__SECRET_KEY": values["AIRFLOW__API__SECRET_KEY"],
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "MLFLOW_TRACKING_URI": urls["mlflow"],
                "MLFLOW_TRACKING_USERNAME": values["MLFLOW_TRACKING_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": values["MLFLOW_TRACKING_PASSWORD"],
                "MLOPS_REGISTRY_LOCK_URI": pg.url("mlflow"),
                "MLOPS_MLFLOW_UI_URL": urls["mlflow"],
                "MLOPS_DATA_DOCS_URL": urls["data_docs"],
            }
        )
        env = embedded_env(self.settings, api_port=self.airflow_port, base=base)
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{self.airflow_port}/execution/"
        env["AIRFLOW__API__HOST"] = "127.0.0.1"
        return env

    def _argv(self, service: str) -> list[str]:
        bindir = Path(sys.executable).parent
        if service == "mlflow":
            return [
                str(bindir / "mlflow"), "server", "--app-name", "basic-auth",
                "--backend-store-uri", self.postgres().url("mlflow"),
                "--artifacts-destination", str(self.root / "mlflow-artifacts"), "--serve-artifacts",
                "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1",
            ]  # fmt: skip
        if service == "data-docs":
            return [
                sys.executable, "-m", "http.server", str(self.docs_port),
                "--bind", "127.0.0.1", "--directory", str(self.docs_site),
            ]  # fmt: skip
        return [str(bindir / "airflow"), service.removeprefix("airflow-")]

    def _mlflow_auth_config(self) -> Path:
        values = self._values()
        return mlflow_auth_ini(
            self.root / "mlflow" / "auth.ini",
            self.postgres().url("mlflow"),
            values["MLFLOW_TRACKING_USERNAME"],
            values["MLFLOW_TRACKING_PASSWORD"],
        )

    # -- processes ---------------------------------------------------------------------

    def _pid(self, service: str) -> int | None:
        """The pid of the service's process if it is the one ``up`` started (pid and start time match).

        Airflow's processes rewrite their command line and environment (setproctitle), so the
        pid file records the process's start time too.
        """
        import psutil

        path = self.pids / f"{service}.pid"
        if not path.exists():
            return None
        pid, _, started = path.read_text().strip().partition(" ")
        try:
            proc = psutil.Process(int(pid))
            if f"{proc.create_time():.2f}" == started and proc.status() != psutil.STATUS_ZOMBIE:
                return proc.pid
        except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        path.unlink(missing_ok=True)  # a stale pid file: that process is gone (or is someone else's)
        return None

    def _start(self, service: str, env: dict[str, str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        extra = {}
        if service == "mlflow":
            extra = {
                **MLFLOW_SERVER_ENV,
                "MLFLOW_AUTH_CONFIG_PATH": str(self._mlflow_auth_config()),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self._values()["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            }
        with open(self.logs / f"{service}.log", "ab") as log:
            proc = subprocess.Popen(
                self._argv(service),
                env={**env, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.settings.project_root,
            )
        import psutil

        (self.pids / f"{service}.pid").write_text(f"{proc.pid} {psutil.Process(proc.pid).create_time():.2f}")

    def _wait(self, what: str, ready, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(1)
        raise StackError(f"{what} did not come up within {timeout:.0f} s; see {self.logs}")

    def up(self) -> dict[str, str]:
        import requests

        from devstack.embedded import ensure_dataset_experiments

        pg, urls = self.postgres(), self.urls()
        for sub in ("lake", "gx", "runs"):
            (self.settings.home / sub).mkdir(parents=True, exist_ok=True)
        self.docs_site.mkdir(parents=True, exist_ok=True)
        if not pg.initialized():
            print(f"==> PostgreSQL: new cluster in {pg.data}", flush=True)
            pg.init()
        if not pg.running():
            pg.start()
        for database in ("airflow", "mlflow"):
            pg.ensure_database(database)
        env = self.env()
        if self._pid("mlflow") is None:
            self._start("mlflow", env)
        self._wait("MLflow", lambda: requests.get(f"{urls['mlflow']}/health", timeout=3).ok)
        os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")})
        ensure_dataset_experiments(self.settings, urls["mlflow"], None)
        airflow = [s for s in SERVICES if s.startswith("airflow-")]
        if any(self._pid(s) is None for s in airflow):
            subprocess.run(
                [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=self.settings.project_root,
            )
        for service in (*airflow, "data-docs"):
            if self._pid(service) is None:
                self._start(service, env)

        def airflow_ready() -> bool:
            health = requests.get(f"{urls['airflow']}/api/v2/monitor/health", timeout=3).json()
            return all(
                health.get(k, {}).get("status") == "healthy" for k in ("scheduler", "triggerer", "dag_processor")
            )

        self._wait("Airflow", airflow_ready)
        self._wait("Data Docs", lambda: requests.get(urls["data_docs"], timeout=3).ok)
        self._wait("the admin password", self.passwords_file.exists)
        return urls

    def down(self) -> list[str]:
        """Stop every process of this stack; returns what was stopped.

        Each service was started as the leader of its own session: everything still in one of
        those sessions is this stack's, including processes whose parent has exited.
        """
        import psutil

        sessions, stopped = set(), []
        for service in reversed(SERVICES):
            pid = self._pid(service)
            if pid is not None:
                sessions.add(pid)
                stopped.append(service)
        procs = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                if proc.pid != os.getpid() and os.getsid(proc.pid) in sessions:
                    procs.append(proc)
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        for service in SERVICES:
            (self.pids / f"{service}.pid").unlink(missing_ok=True)
        if (self.root / "stack.env").exists():
            pg = self.postgres()
            if pg.running():
                pg.stop()
                stopped.append("postgresql")
        return stopped

    def status(self) -> dict[str, bool]:
        out = {s: self._pid(s) is not None for s in SERVICES}
        out["postgresql"] = (self.root / "stack.env").exists() and self.postgres().running()
        return out

    def admin_password(self) -> str:
        return json.loads(self.passwords_file.read_text())["admin"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devstack.up_stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "password"])
    args = parser.parse_args(argv)
    try:
        stack = UpStack()
        if args.command == "up":
            before = stack.status()
            urls = stack.up()

            def rel(path: Path) -> str:
                inside = Path(path).resolve().is_relative_to(Path.cwd())
                return os.path.relpath(path) if inside else str(path)

            print(("already up" if all(before.values()) else "up") + ": the production-shaped local stack")
            print(f"  Airflow     {urls['airflow']}   user admin, password: {rel(stack.passwords_file)}")
            print(
                f"  MLflow      {urls['mlflow']}   MLFLOW_TRACKING_USERNAME/PASSWORD in {rel(stack.root / 'stack.env')}"
            )
            print(f"  Data Docs   {urls['data_docs']}")
            print(f"  PostgreSQL  127.0.0.1:{stack.pg_port} (user airflow, POSTGRES_PASSWORD in the same file)")
            print(f"  logs        {rel(stack.logs)}/    stop everything: make down")
        elif args.command == "down":
            stopped = stack.down()
            print("down: stopped " + (", ".join(stopped) if stopped else "nothing (not running)"))
        elif args.command == "status":
            print(json.dumps(stack.status(), indent=2))
        else:
            print(stack.admin_password())
    except (StackError, PostgresError, subprocess.CalledProcessError, OSError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
