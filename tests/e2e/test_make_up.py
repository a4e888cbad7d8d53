"""`make up`, the README's commands verbatim, then `make down`: the production shape on this machine.

Real: PostgreSQL (Debian's package) holding Airflow's metadata and MLflow's store, an MLflow
server with basic auth and proxied artifacts, the Airflow 3 services as separate processes, the
Data Docs site; a pipeline run triggered with curl and trained with 2-rank horovodrun. The stack
lives in a temporary MLOPS_HOME; ports are the README's defaults.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time

import mlflow
import psutil
import psycopg2
import pytest
import requests

from include.mlops.datagen import write_day
from tests.conftest import ROOT
from tests.readme import readme_block

pytestmark = pytest.mark.e2e
PORTS = {
    "MLOPS_UP_AIRFLOW_PORT": 8080,
    "MLOPS_UP_MLFLOW_PORT": 5000,
    "MLOPS_UP_DOCS_PORT": 8081,
    "MLOPS_UP_PG_PORT": 5433,
}
DAG_ID = "fraud_model_pipeline"


def busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def shell(script: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def home():
    taken = [p for p in PORTS.values() if busy(p)]
    if taken:
        message = f"ports {taken} are in use on 127.0.0.1; `make up` needs them (stop what runs there)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Under the checkout (as `make up` uses .local/): as root, PostgreSQL runs as its own user,
    # which cannot enter pytest's private temporary directories.
    home = ROOT / ".local" / f"up-test-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    for i in range(3):
        write_day(home / "lake", dt.date(2026, 1, 1) + dt.timedelta(days=i), 20000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS", "MLFLOW"))}
    env["MLOPS_HOME"] = str(home)
    yield home, env
    shell("make down", env)  # whatever happened above
    from include.mlops.pgserver import LocalPostgres

    # The server's data, wherever it went (as root, a private checkout puts it in postgres's home).
    shutil.rmtree(LocalPostgres(home / "stack" / "postgres", 5433, "airflow").root, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def test_make_up_readme_commands_then_make_down(home):
    home, env = home
    block = readme_block("make up")
    assert block[-1] == "make down"
    started = time.time()
    out = shell("\n".join(block[:-1]), env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"make up + trigger: {time.time() - started:.0f} s")
    assert "Airflow     http://127.0.0.1:8080   user admin, password:" in out.stdout
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["dag_run_id"]
    credentials = dict(line.split("=", 1) for line in (home / "stack" / "stack.env").read_text().splitlines()[2:])
    assert oct((home / "stack" / "stack.env").stat().st_mode)[-3:] == "600"

    again = shell("make up", env)  # idempotent: nothing new started
    assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr

    password = (home / "stack" / "airflow-passwords.json").read_text()
    assert json.loads(password)["admin"] != "admin"
    token = requests.post(
        "http://127.0.0.1:8080/auth/token",
        json={"username": "admin", "password": json.loads(password)["admin"]},
        timeout=10,
    ).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    deadline = time.time() + 600
    while time.time() < deadline:
        state = api.get(f"http://127.0.0.1:8080/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=10).json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    assert state == "success"

    # Airflow's record and MLflow's registry are in this stack's PostgreSQL.
    def rows(database, sql, *args):
        conn = psycopg2.connect(
            host="127.0.0.1", port=5433, user="airflow", password=credentials["POSTGRES_PASSWORD"], dbname=database
        )
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    ((state, dag_run_pk),) = rows("airflow", "SELECT state, id FROM dag_run WHERE run_id = %s", run_id)
    assert state == "success"
    ((note,),) = rows("airflow", "SELECT content FROM dag_run_note WHERE dag_run_id = %s", dag_run_pk)
    assert note.startswith("**Promoted**: champion is now v1.")
    assert ("champion",) in rows("mlflow", "SELECT alias FROM registered_model_aliases WHERE name = 'fraud-detector'")
    moves = rows("mlflow", "SELECT key FROM registered_model_tags WHERE key LIKE %s", "champion.move.%")
    assert moves == [("champion.move.000001",)]
    # MLflow refuses anonymous clients; with the stack's credentials the champion is there.
    assert requests.get("http://127.0.0.1:5000/api/2.0/mlflow/registered-models/search", timeout=10).status_code == 401
    os.environ.update(
        MLFLOW_TRACKING_USERNAME=credentials["MLFLOW_TRACKING_USERNAME"],
        MLFLOW_TRACKING_PASSWORD=credentials["MLFLOW_TRACKING_PASSWORD"],
    )
    try:
        champion = mlflow.MlflowClient("http://127.0.0.1:5000").get_model_version_by_alias("fraud-detector", "champion")
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    assert champion.tags["airflow.run_id"] == run_id
    # The task links open real pages: the Data Docs site serves the validation's page.
    links = api.get(f"http://127.0.0.1:8080/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/validate/links").json()
    docs = links["extra_links"]["Data Docs"]
    assert docs.startswith("http://127.0.0.1:8081/validations/")
    page = requests.get(docs, timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()

    # Every service leads its own session; the stack is everything in those sessions.
    leaders = {int(p.read_text().split()[0]) for p in (home / "stack" / "pids").glob("*.pid")}
    assert len(leaders) == 6
    members = [p for p in psutil.process_iter() if _session(p.pid) in leaders]
    assert len(members) > len(leaders)  # workers, gunicorn/uvicorn children...
    down = shell(block[-1], env)
    assert down.returncode == 0 and "down: stopped " in down.stdout, down.stdout + down.stderr
    assert "postgresql" in down.stdout
    time.sleep(1)
    left = [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], "processes of the stack still running"
    assert not [port for port in PORTS.values() if busy(port)]
    assert "nothing (not running)" in shell("make down", env).stdout


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
