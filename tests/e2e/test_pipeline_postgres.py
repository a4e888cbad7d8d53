"""One full pipeline run on production's databases: Airflow's metadata and MLflow's store on PostgreSQL.

Real: a PostgreSQL server (Debian's package, ``tests/postgres.py``), Airflow 3 (``airflow
standalone``: api-server, scheduler, dag-processor, triggerer, LocalExecutor) with its metadata
database on it, an MLflow tracking server (basic auth, proxied artifacts) with its backend store
on it, the champion lock in that store, 2-rank ``horovodrun`` training.
"""

from __future__ import annotations

import datetime as dt
import os

import mlflow
import psycopg2
import pytest

from include.mlops.datagen import write_day
from include.mlops.localstack import Stack
from tests.conftest import DAY0, LINEAGE_TAGS, TRAINER_VENV
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.e2e
MODEL = "fraud-detector"
ROWS = 30000
FAST = {"window_days": 2, "epochs": 2, "min_pr_auc": 0.2}


def _rows(postgres, database: str, sql: str, *args) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", port=postgres.port, user="mlops", dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory, postgres):
    root = tmp_path_factory.mktemp("pg_e2e")
    airflow_db, mlflow_db = postgres.create_database("airflow"), postgres.create_database("mlflow")
    server = MlflowServer(root / "mlflow", backend_store_uri=postgres.url(mlflow_db))
    server.start()
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url(airflow_db),
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": server.password,
        "MLOPS_REGISTRY_LOCK_URI": postgres.url(mlflow_db),
    }
    stack = Stack(root / "home", trainer_venv=TRAINER_VENV, env=env)
    for i in range(2):
        write_day(stack.settings.lake, DAY0 + dt.timedelta(days=i), ROWS)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=server.password)
    try:
        stack.start()
        yield stack, server, airflow_db, mlflow_db
    finally:
        stack.stop()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_pipeline_runs_with_airflow_and_mlflow_on_postgresql(pg_stack, postgres):
    stack, server, airflow_db, mlflow_db = pg_stack
    day = DAY0 + dt.timedelta(days=1)
    run_id = stack.trigger({"partition_date": day.isoformat(), **FAST})
    assert stack.wait(run_id) == "success", stack.tail()

    # Airflow's own record of the run is in PostgreSQL (and so is its note).
    dag_run = _rows(postgres, airflow_db, "SELECT state, id FROM dag_run WHERE run_id = %s", run_id)
    assert dag_run and dag_run[0][0] == "success"
    note = _rows(postgres, airflow_db, "SELECT content FROM dag_run_note WHERE dag_run_id = %s", dag_run[0][1])
    assert note and note[0][0].startswith("**Promoted**: champion is now v") and "**Gate passed**" in note[0][0]
    states = _rows(postgres, airflow_db, "SELECT task_id, state FROM task_instance WHERE run_id = %s", run_id)
    assert {s for _, s in states} == {"success"} and len(states) == 9

    # MLflow's registry is in PostgreSQL: the champion, its lineage, the move record.
    client = mlflow.MlflowClient(server.url)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert [t for t in LINEAGE_TAGS if not champion.tags.get(t)] == []
    assert champion.tags["airflow.run_id"] == run_id and champion.tags["train.horovod_size"] == "2"
    aliases = _rows(postgres, mlflow_db, "SELECT alias, version FROM registered_model_aliases WHERE name = %s", MODEL)
    assert dict(aliases)["champion"] == int(champion.version)
    moves = _rows(
        postgres,
        mlflow_db,
        "SELECT key FROM registered_model_tags WHERE name = %s AND key LIKE 'champion.move.%%'",
        MODEL,
    )
    assert [k for (k,) in moves] == ["champion.move.000001"]
    runs = _rows(postgres, mlflow_db, "SELECT status FROM runs WHERE run_uuid = %s", champion.run_id)
    assert runs == [("FINISHED",)]
