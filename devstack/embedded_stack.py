"""A local Airflow 3 stack driven over the REST API v2.

Used by ``make demo``, the end-to-end tests and the benchmarks: an isolated MLOPS_HOME, the
embedded environment on a free port, the scheduler, dag-processor and api-server as processes
of one process group (and the triggerer when asked: ``airflow standalone`` always runs one, and
it polls even with nothing deferred), JWT login, trigger/wait helpers. Not for production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

DAG_ID = "fraud_model_pipeline"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The api-server first: the scheduler's workers report to its execution API from their first
# task on (a scheduled run's first task failed with "connection refused" when they raced).
COMPONENTS = ("api-server", "scheduler", "dag-processor")


class Stack:
    def __init__(
        self,
        home: Path,
        trainer_venv: Path | None = None,
        env: dict[str, str] | None = None,
        triggerer: bool = False,
    ):
        from devstack.embedded import embedded_env
        from include.mlops.settings import get_settings

        self.home = home
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS", "MLFLOW"))}
        base["MLOPS_HOME"] = str(home)
        if trainer_venv:
            base["MLOPS_TRAINER_VENV"] = str(trainer_venv)
        base.update(env or {})
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(base)
        try:
            self.settings = get_settings()
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.env = embedded_env(self.settings, api_port=self.port, base=base)
        # The DAG files do not change while a Stack runs (tests, make demo, make bench): parsed
        # at start, then hourly rather than every 30 s (each parse is a process of its own).
        self.env.setdefault("AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL", "3600")
        self.url = f"http://localhost:{self.port}"
        self.components = (*COMPONENTS, "triggerer") if triggerer else COMPONENTS
        self.procs: list[subprocess.Popen] = []
        self.token: str | None = None
        self.dag_of: dict[str, str] = {}
        self.logfile = home / "airflow.log"

    def pids(self) -> list[int]:
        """Every process of the stack: its components and theirs (workers, servers)."""
        import psutil

        found = []
        for proc in self.procs:
            try:
                found += [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
            except psutil.NoSuchProcess:
                pass
        return found

    def start(self, timeout: float = 240) -> None:
        from devstack.embedded import bootstrap

        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            bootstrap(self.settings)
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.log = open(self.logfile, "w")
        airflow = str(Path(sys.executable).parent / "airflow")
        deadline = time.time() + timeout
        for component in self.components:
            leader = self.procs[0].pid if self.procs else 0  # one process group, led by the first
            self.procs.append(
                subprocess.Popen(
                    [airflow, component],
                    env=self.env,
                    stdout=self.log,
                    stderr=subprocess.STDOUT,
                    process_group=leader,
                )
            )
            if component == "api-server":
                self._wait_until(deadline, lambda: requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).ok)

        def ready() -> bool:
            health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            if health.get("scheduler", {}).get("status") == "healthy" and self.login():
                # Every DAG file parsed (one DAG each), not only the first.
                dags = self.get("/api/v2/dags?limit=100").json()
                return dags.get("total_entries", 0) >= len(list((self.settings.project_root / "dags").glob("*.py")))
            return False

        self._wait_until(deadline, ready)

    def _wait_until(self, deadline: float, ready) -> None:
        while time.time() < deadline:
            assert all(p.poll() is None for p in self.procs), self.tail()
            try:
                if ready():
                    return
            except requests.RequestException:
                pass
            time.sleep(3)
        raise AssertionError("Airflow did not come up:\n" + self.tail())

    def login(self) -> bool:
        r = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": "admin"}, timeout=10)
        if r.status_code in (200, 201):
            self.token = r.json()["access_token"]
            return True
        return False

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _request(self, method: str, path: str, body: dict | None = None, attempts: int = 4) -> requests.Response:
        """One REST call, retried on 5xx and timeouts.

        On SQLite every Airflow component writes to one file; when a scheduled run starts at
        the same moment, a request can wait out the lock and fail with 500 or time out. That
        is the embedded default's limit (production runs on Postgres); requests made here are
        idempotent or carry their own run id, so retrying them is safe.
        """
        for attempt in range(attempts):
            try:
                r = requests.request(method, self.url + path, json=body, headers=self.headers(), timeout=60)
            except requests.Timeout:
                if attempt == attempts - 1:
                    raise
                continue
            if r.status_code < 500 or attempt == attempts - 1:
                return r
            time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")

    def get(self, path: str) -> requests.Response:
        return self._request("GET", path)

    def post(self, path: str, body: dict) -> requests.Response:
        return self._request("POST", path, body)

    def _dag(self, run_id: str) -> str:
        """The DAG of a run this stack triggered (default: the card-fraud pipeline's)."""
        return self.dag_of.get(run_id, DAG_ID)

    def trigger(self, conf: dict, dag_id: str = DAG_ID) -> str:
        run_id = f"manual__{uuid.uuid4().hex[:12]}"
        self.dag_of[run_id] = dag_id
        r = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        # 409: an earlier attempt created the run before its response was lost.
        assert r.status_code in (200, 409), r.text
        return run_id

    def wait(self, run_id: str, timeout: float = 600) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.get(f"/api/v2/dags/{self._dag(run_id)}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(f"run {run_id} still {state} after {timeout}s:\n{self.tail()}")

    def task_states(self, run_id: str) -> dict[str, str]:
        r = self.get(f"/api/v2/dags/{self._dag(run_id)}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in r.json()["task_instances"]}

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        r = self.get(
            f"/api/v2/dags/{self._dag(run_id)}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
            "?full_content=true"
        )
        assert r.status_code == 200, r.text
        lines = []
        for item in r.json().get("content", []):
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            lines.append(str(item.get("event", "")))
            for error in item.get("error_detail") or []:  # a failed task's exception, in full
                lines.append(f"{error.get('exc_type')}: {error.get('exc_value')}")
        return "\n".join(lines)

    def set_task_state(self, run_id: str, task_id: str, state: str) -> requests.Response:
        return self._request(
            "PATCH", f"/api/v2/dags/{self._dag(run_id)}/dagRuns/{run_id}/taskInstances/{task_id}", {"new_state": state}
        )

    def tail(self, n: int = 80) -> str:
        self.log.flush()
        return "\n".join(self.logfile.read_text().splitlines()[-n:])

    def stop(self) -> None:
        """Stop every process of the stack, its components' children included.

        LocalExecutor's idle workers do not always exit on SIGTERM: they are killed after 5 s.
        """
        import psutil

        if any(p.poll() is None for p in self.procs):
            members = []
            for pid in self.pids():
                with contextlib.suppress(psutil.NoSuchProcess):
                    members.append(psutil.Process(pid))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[0].pid, signal.SIGTERM)
            for member in members:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.terminate()
            _, left = psutil.wait_procs(members, timeout=5)
            for member in left:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
            psutil.wait_procs(left, timeout=10)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.procs:
            self.log.close()
