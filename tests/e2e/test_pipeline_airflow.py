"""fraud_model_pipeline through a real Airflow 3 (api-server, scheduler, dag-processor,
LocalExecutor on SQLite), triggered over the REST API v2 with a JWT, training with a real
`horovodrun -np 2`, and a real MLflow store. Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests

from include.mlops.datagen import write_day
from include.mlops.dataset import partitions_sha256
from tests.conftest import DAY0, ROOT, TRAINER_VENV

pytestmark = pytest.mark.e2e
DAG_ID = "fraud_model_pipeline"
MODEL = "fraud-detector"
ROWS = 50000
LINEAGE_TAGS = [
    "airflow.dag_id",
    "airflow.run_id",
    "data.interval_start",
    "data.interval_end",
    "data.partitions",
    "data.sha256",
    "validation.success",
    "validation.result_id",
    "code.git_commit",
    "train.horovod_size",
    "gate.passed",
]
FAST = {"window_days": 2, "epochs": 3, "min_pr_auc": 0.2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, home: Path):
        from include.mlops.cli import embedded_env
        from include.mlops.settings import get_settings

        self.home = home
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS", "MLFLOW"))}
        base.update({"MLOPS_HOME": str(home), "MLOPS_TRAINER_VENV": str(TRAINER_VENV)})
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(base)
        try:
            self.settings = get_settings()
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.env = embedded_env(self.settings, api_port=self.port, base=base)
        self.url = f"http://localhost:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None

    def start(self, timeout: float = 240) -> None:
        from include.mlops.cli import bootstrap

        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            bootstrap(self.settings)
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.log = open(self.home / "standalone.log", "w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, self.tail()
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if health.get("scheduler", {}).get("status") == "healthy" and self.login():
                    r = self.get(f"/api/v2/dags/{DAG_ID}")
                    if r.status_code == 200:
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

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(), timeout=30)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers(), timeout=30)

    def trigger(self, conf: dict) -> str:
        r = self.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        assert r.status_code == 200, r.text
        return r.json()["dag_run_id"]

    def wait(self, run_id: str, timeout: float = 600) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(f"run {run_id} still {state} after {timeout}s:\n{self.tail()}")

    def task_states(self, run_id: str) -> dict[str, str]:
        r = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in r.json()["task_instances"]}

    def tail(self, n: int = 80) -> str:
        self.log.flush()
        return "\n".join((self.home / "standalone.log").read_text().splitlines()[-n:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e_home")
    s = Stack(home)
    for i in range(3):
        write_day(s.settings.lake, DAY0 + dt.timedelta(days=i), ROWS)
    s.start()
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    yield s
    s.stop()


def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def registry_state() -> dict:
    versions = client().search_model_versions(f"name = '{MODEL}'")
    try:
        aliases = client().get_registered_model(MODEL).aliases
    except mlflow.exceptions.MlflowException:
        aliases = {}
    return {"versions": sorted(str(v.version) for v in versions), "aliases": dict(aliases)}


def test_rest_api_requires_auth_and_valid_params(stack):
    r = requests.post(f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}}, timeout=10)
    assert r.status_code == 401
    r = stack.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"horovod_np": 0}})
    assert r.status_code == 400 and "horovod_np" in r.text


def test_pipeline_trains_with_two_ranks_and_promotes_with_lineage(stack):
    day = DAY0 + dt.timedelta(days=2)
    run_id = stack.trigger({"partition_date": day.isoformat(), **FAST})
    assert stack.wait(run_id) == "success", stack.tail()
    assert set(stack.task_states(run_id).values()) == {"success"}

    champion = client().get_model_version_by_alias(MODEL, "champion")
    assert str(client().get_model_version_by_alias(MODEL, "challenger").version) == str(champion.version)
    tags = champion.tags
    missing = [t for t in LINEAGE_TAGS if not tags.get(t)]
    assert missing == []
    partitions = [(DAY0 + dt.timedelta(days=i)).isoformat() for i in (1, 2)]
    files = [
        p for d in partitions for p in sorted((stack.settings.lake / "transactions" / f"date={d}").glob("*.parquet"))
    ]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tags["airflow.dag_id"] == DAG_ID and tags["airflow.run_id"] == run_id
    assert tags["train.horovod_size"] == "2"
    assert tags["data.partitions"] == ",".join(partitions)
    assert tags["data.sha256"] == partitions_sha256(files)
    assert tags["data.interval_start"].startswith(partitions[0]) and tags["data.interval_end"].startswith("2026-01-04")
    assert tags["validation.success"] == "true" and tags["gate.passed"] == "true"
    assert tags["validation.result_id"].count(";") == 1  # one GX result per partition
    assert tags["code.git_commit"] == (head or "unknown")

    run = mlflow.get_run(champion.run_id)
    assert run.data.params["horovod_size"] == "2"
    verdict = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="gate/verdict.json")).read_text()
    )
    assert verdict["passed"] and any("no champion yet" in r for r in verdict["reasons"])

    # The champion loads by alias from the MLflow store, in the trainer environment.
    probe = (
        "import mlflow, pandas as pd, sys\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        f"df = pd.read_parquet('{files[-1]}').head(500)\n"
        "p = m.predict(df)\n"
        "assert len(p) == 500 and ((p >= 0) & (p <= 1)).all()\n"
        "print(round(float(p[df.is_fraud.to_numpy() == 1].mean() - p[df.is_fraud.to_numpy() == 0].mean()), 3))\n"
    )
    out = subprocess.run(
        [str(TRAINER_VENV / "bin" / "python"), "-c", probe],
        env={**os.environ, "MLFLOW_TRACKING_URI": stack.settings.mlflow_tracking_uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) > 0  # frauds score higher than the rest


def test_rerunning_the_run_creates_no_second_version(stack):
    runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?state=success").json()["dag_runs"]
    run_id = runs[0]["dag_run_id"]
    before = registry_state()
    r = stack.post(
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": ["train"],
            "include_downstream": True,
            "dry_run": False,
            "only_failed": False,
        },
    )
    assert r.status_code == 200, r.text
    cleared = {t["task_id"] for t in r.json()["task_instances"]}
    assert {"train", "register", "promote"} <= cleared
    time.sleep(2)
    assert stack.wait(run_id) == "success", stack.tail()
    assert registry_state() == before


def test_defective_partition_fails_validation_and_leaves_registry_alone(stack):
    day = DAY0 + dt.timedelta(days=3)
    part = write_day(stack.settings.lake, day, ROWS, defect="raw_card_numbers")
    data_before = hashlib.sha256((part / "part-00000.parquet").read_bytes()).hexdigest()
    before = registry_state()
    run_id = stack.trigger({"partition_date": day.isoformat(), **FAST, "window_days": 1})
    assert stack.wait(run_id) == "failed"
    states = stack.task_states(run_id)
    assert states["validate"] == "failed"
    assert states["train"] == "upstream_failed" and states["register"] == "upstream_failed"
    quarantine = stack.settings.quarantine_dir / "card_fraud" / f"date={day.isoformat()}" / "quarantine.json"
    record = json.loads(quarantine.read_text())
    assert record["failed_expectations"][0]["column"] == "merchant_descriptor"
    assert registry_state() == before
    assert hashlib.sha256((part / "part-00000.parquet").read_bytes()).hexdigest() == data_before
