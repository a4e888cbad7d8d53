"""fraud_model_pipeline through a real Airflow 3 (api-server, scheduler, dag-processor,
LocalExecutor on SQLite), triggered over the REST API v2 with a JWT, training with a real
`horovodrun -np 2`, and a real MLflow store. Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests

from devstack.datagen import write_day
from devstack.embedded_stack import DAG_ID, Stack
from include.mlops.common.dataset import partitions_sha256
from include.mlops.pipeline import latest_partition
from include.mlops.runs import RunRef
from include.mlops.training.jobs import local_gpu_count
from tests.conftest import DAY0, LINEAGE_TAGS, ROOT, TRAINER_VENV
from tests.e2e.embedded import MODEL, client, registry_state, run_wrapper
from tests.readme import readme_command

pytestmark = pytest.mark.e2e
ROWS = 25000  # a day; enough for PR-AUC over the FAST floor, small enough to keep make test short
FAST = {"window_days": 2, "epochs": 3, "min_pr_auc": 0.2}
RUNS: dict[str, tuple[str, dt.date]] = {}  # runs a later test builds on


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e_home")
    # Each rank's final weights, hashed (the trainer writes them when this is set).
    # MLOPS_DATA_WAIT_HOURS=0: the scheduler's own run (for yesterday, which the lake lacks) gives up at once.
    s = Stack(
        home,
        trainer_venv=TRAINER_VENV,
        env={"MLOPS_TRAINER_DIGEST_DIR": str(home / "digests"), "MLOPS_DATA_WAIT_HOURS": "0"},
    )
    for i in range(3):
        write_day(s.settings.lake, DAY0 + dt.timedelta(days=i), ROWS)
    s.start()
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    yield s
    s.stop()


def test_embedded_airflow_db_uses_wal_and_a_lock_timeout(stack):
    import sqlite3

    conn = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn.endswith("?timeout=30")
    with sqlite3.connect(conn.removeprefix("sqlite:///").split("?")[0]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Tasks wait up to 30 s for the execution API, as Airflow itself reads the setting.
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "config", "get-value", "workers", "execution_api_timeout"],
        env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == "30", out.stderr[-1000:]


def test_rest_api_requires_auth_and_valid_params(stack):
    r = requests.post(f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}}, timeout=10)
    assert r.status_code == 401
    r = stack.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"horovod_np": 0}})
    assert r.status_code == 400 and "horovod_np" in r.text


def test_rest_api_refuses_undeclared_conf_keys_before_creating_anything(stack):
    # The scheduler's own run may appear at any moment: count only the kinds these requests could create.
    triggered = f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=manual&run_type=backfill"
    runs_before = stack.get(triggered).json()["total_entries"]
    # Without credentials the route's own 401 answers, not a list of the DAG's parameters.
    r = requests.post(
        f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"epoch": 1}}, timeout=10
    )
    assert r.status_code == 401
    r = stack.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"epoch": 1, "window_days": 2}})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"{DAG_ID}: unknown run parameter 'epoch' (did you mean 'epochs'?); declared: ")
    assert "\n" not in detail
    r = stack.post(
        "/api/v2/backfills",
        {"dag_id": DAG_ID, "from_date": "2026-01-02T00:00:00Z", "to_date": "2026-01-02T00:00:00Z",
         "dag_run_conf": {"learning_rte": 0.1}},
    )  # fmt: skip
    assert r.status_code == 400 and "unknown run parameter 'learning_rte' (did you mean 'learning_rate'?)" in r.text
    assert stack.get(triggered).json()["total_entries"] == runs_before
    assert stack.get(f"/api/v2/backfills?dag_id={DAG_ID}").json()["total_entries"] == 0


def test_cli_trigger_with_an_undeclared_key_fails_in_plan_with_one_line(stack):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "trigger", DAG_ID, "-c", json.dumps({"epoch": 1})],
        env=stack.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=1").json()["dag_runs"]
    run_id = runs[0]["dag_run_id"]
    assert stack.wait(run_id) == "failed"
    states = stack.task_states(run_id)
    assert states["plan"] == "failed" and states["validate"] == "upstream_failed"
    ti = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/plan").json()
    assert ti["try_number"] == 1  # no retry for a mistake in the run's parameters
    assert "unknown run parameter 'epoch' (did you mean 'epochs'?)" in stack.task_log(run_id, "plan")


def test_the_scheduled_run_for_a_day_without_data_is_skipped_with_its_reason(stack):
    deadline = time.time() + 240
    while True:
        runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=scheduled").json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        assert time.time() < deadline, runs
        time.sleep(3)
    (run,) = runs
    day = run["data_interval_start"][:10]
    assert run["state"] == "success"
    states = stack.task_states(run["dag_run_id"])
    assert states["wait_for_data"] == "skipped" and states["plan"] == "skipped" and states["summarize"] == "skipped"
    assert run["note"].startswith(
        f"**Skipped: no data.** run for {day}: partition {day} of 'card_fraud' did not arrive"
    )


def test_pipeline_trains_with_two_ranks_and_promotes_with_lineage(stack):
    day = DAY0 + dt.timedelta(days=2)
    run_id = stack.trigger({"partition_date": day.isoformat(), **FAST, "horovod_np": 2})
    assert stack.wait(run_id) == "success", stack.tail()
    states = stack.task_states(run_id)
    # The grid shows the outcome as a task: the other outcomes are skipped.
    assert states.pop("candidate_rejected") == states.pop("candidate_held") == "skipped"
    assert set(states.values()) == {"success"} and "champion_replaced" in states

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
    assert tags["evaluation.partitions"] == ",".join(partitions)  # the newest days in the lake
    assert tags["data.sha256"] == partitions_sha256(files)
    assert tags["data.interval_start"].startswith(partitions[0]) and tags["data.interval_end"].startswith("2026-01-04")
    assert tags["validation.success"] == "true" and tags["gate.passed"] == "true"
    assert tags["validation.result_id"].count(";") == 1  # one GX result per partition
    assert tags["code.git_commit"] == (head or "unknown")

    run = mlflow.get_run(champion.run_id)
    assert run.data.params["horovod_size"] == "2"
    # Unique, readable run names; the experiment opens on its training runs in MLflow 3's UI.
    assert run.info.run_name == f"card_fraud-{day.isoformat()}-{champion.run_id[:6]}"
    assert client().get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    verdict = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="gate/verdict.json")).read_text()
    )
    assert verdict["passed"] and any("no champion yet" in r for r in verdict["reasons"])
    note = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["note"]
    assert note.startswith("**Promoted**: champion is now v")
    assert f"**Gate passed** (against no champion, held-out rows of {partitions[0]}..{partitions[1]})" in note

    # Task links to what the run produced, computed when each task ended.
    def links(task_id):
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return stack.get(path).json()["extra_links"]

    experiment = client().get_run(champion.run_id).info.experiment_id
    assert links("train")["MLflow run"] == f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{champion.run_id}"
    assert (
        links("train")["MLflow runs"]
        == f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?viewStateShareKey=mlops-runs"
    )
    view = json.loads(client().get_experiment(experiment).tags["mlflow.sharedViewState.mlops-runs"])
    assert "metrics.`holdout_pr_auc`" in view["selectedColumns"]
    assert {f"metrics.`{k}`" for k in run.data.metrics} >= {
        c for c in view["selectedColumns"] if c.startswith("metrics.")
    }
    assert links("register")["Model version"] == f"http://127.0.0.1:5000/#/models/{MODEL}/versions/{champion.version}"
    assert links("register")["MLflow run"] is None  # a link with no target stays hidden

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


def test_a_failed_gate_shows_on_the_run_and_in_its_summary(stack):
    write_day(stack.settings.lake, DAY0 + dt.timedelta(days=4), ROWS)  # a day newer than the run's
    before = registry_state()
    day = DAY0 + dt.timedelta(days=2)
    run_id = stack.trigger(
        {"partition_date": day.isoformat(), **FAST, "window_days": 1, "epochs": 1, "min_pr_auc": 0.999}
    )
    assert stack.wait(run_id) == "success", stack.tail()
    RUNS["failed_gate"] = (run_id, day)
    states = stack.task_states(run_id)
    assert states["promote"] == "success" and states["candidate_rejected"] == "success"
    assert states["champion_replaced"] == states["candidate_held"] == "skipped" and states["summarize"] == "success"
    note = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["note"]
    champion = before["aliases"]["champion"]
    # Scored on the newest day in the lake, not on the run's own (older) day.
    newest = latest_partition(stack.settings, "card_fraud").isoformat()
    assert newest > day.isoformat()
    assert note.startswith(
        f"**Gate failed** (against champion v{champion}, held-out rows of {newest}): the candidate was not promoted."
    )
    assert "\n- FAIL floor: " in note and len(note) <= 1000
    assert registry_state()["aliases"]["champion"] == champion
    summary = json.loads(
        (stack.settings.runs_dir / DAG_ID / RunRef(DAG_ID, run_id).safe_run_id / "summary.json").read_text()
    )
    assert summary["gate"]["passed"] is False and summary["gate"]["holdout_partitions"] == [newest]
    assert summary["promotion"]["decision"] == "rejected"
    validated = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/validate/xcomEntries/return_value")
    assert sorted(validated.json()["value"]["partitions"]) == [day.isoformat(), newest]  # the run's, and the holdout's
    assert any(r.startswith("FAIL floor: ") for r in summary["gate"]["reasons"])


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


def test_a_second_dataset_runs_from_its_config_and_suite_alone(stack):
    """README's "Adding a dataset", verbatim: ISLP's Default table (string label, other columns, a
    categorical feature) through its own DAG from the factory (dags/credit_default_pipeline.py), its own
    registered model and MLflow experiment, with the default settings; scored against a logistic
    regression on the same held-out rows."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    from include.mlops.common.dataset import load_dataset_config
    from tests.credit_default import default_table, write_days

    cfg = load_dataset_config(ROOT / "datasets" / "credit_default.yaml")
    days = write_days(default_table(ROOT / ".local" / "cache"), stack.settings.lake, DAY0, 5)
    argv = readme_command("dags trigger credit_default_pipeline")
    dag_id = cfg.dag_id
    assert dag_id == "credit_default_pipeline" and argv[argv.index("trigger") + 1] == dag_id
    before = {r["dag_run_id"] for r in stack.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100").json()["dag_runs"]}
    run_wrapper(stack, argv)
    runs = stack.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100").json()["dag_runs"]
    (run_id,) = [r["dag_run_id"] for r in runs if r["dag_run_id"] not in before]
    stack.dag_of[run_id] = dag_id
    assert stack.wait(run_id) == "success", stack.tail()

    c = client()
    champion = c.get_model_version_by_alias("credit-default", "champion")
    # horovod_np left empty: one rank per local GPU, or one rank on a machine without GPUs.
    ranks = str(local_gpu_count() or 1)
    assert champion.tags["airflow.run_id"] == run_id and champion.tags["train.horovod_size"] == ranks
    assert champion.tags["airflow.dag_id"] == dag_id
    if ranks == "1":
        assert "training with 1 Horovod rank(s): no GPU here: one rank using every core" in stack.task_log(
            run_id, "train"
        )
    assert champion.tags["data.partitions"] == ",".join(d.isoformat() for d in days)
    assert c.get_registered_model("credit-default").description == cfg.model_description
    run = c.get_run(champion.run_id)
    assert run.info.run_name.startswith(f"credit_default-{days[-1].isoformat()}-")
    # Its own experiment, named like its DAG; the card-fraud runs stay in theirs.
    assert c.get_experiment(run.info.experiment_id).name == "credit_default_pipeline"
    assert not c.search_runs([run.info.experiment_id], "tags.`mlops.dataset` = 'card_fraud'")
    # Settings that fit 8,000 rows: smaller batches, at least 50 steps an epoch, an early stop.
    assert int(run.data.params["batch_size_per_rank"]) < 512 and int(run.data.params["steps_per_epoch"]) >= 50
    assert "best validation loss" in run.data.tags["train.stopped"]

    # Quality with the defaults: within 0.02 PR-AUC of a logistic regression on the same rows.
    frame = cfg.read_partitions(stack.settings.lake, days)
    y, held = cfg.binary_labels(frame), cfg.holdout_mask(frame[cfg.id_column].to_numpy())
    x = pd.get_dummies(frame[["balance", "income", "student"]], columns=["student"], dtype=float)
    scale = StandardScaler().fit(x[~held])
    baseline = LogisticRegression(max_iter=1000).fit(scale.transform(x[~held]), y[~held])
    lr = average_precision_score(y[held], baseline.predict_proba(scale.transform(x[held]))[:, 1])
    evaluation = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/evaluation/evaluation.json")
    assert evaluation["holdout_rows"] == int(held.sum()) and evaluation["holdout_positives"] == int(np.sum(y[held]))
    ours = evaluation["candidate"]["metrics"]["pr_auc"]
    print(f"credit_default holdout PR-AUC: pipeline {ours:.4f}, logistic regression {lr:.4f}")
    assert ours >= lr - 0.02


def test_ui_plugin_links_to_mlflow(stack):
    plugins = stack.get("/api/v2/plugins").json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "mlops_links")
    views = {v["name"]: v for v in ours["external_views"]}
    assert views["MLflow"]["destination"] == "nav" and views["MLflow"]["href"] == "http://127.0.0.1:5000"
    assert not views["MLflow"].get("url_route")  # a link in a new tab, not a frame MLflow would refuse
    assert set(views) == {"MLflow"}


def _train_output(stack, run_id) -> dict:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train/xcomEntries/return_value"
    return stack.get(path).json()["value"]


def _weights_digest(stack) -> str:
    return json.loads((stack.home / "digests" / "rank-0.json").read_text())["weights_sha256"]


def _rerun(stack, run_id, from_task):
    r = stack.post(
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dag_run_id": run_id, "task_ids": [from_task], "include_downstream": True, "dry_run": False,
         "only_failed": False},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert stack.wait(run_id) == "success", stack.tail()


def test_a_rerun_after_a_data_change_trains_afresh_on_the_new_data(stack):
    # The failed-gate run above (one epoch on one day) is the run whose day is re-delivered;
    # the runs since trained nothing, so the weights' digest is still that run's.
    if "failed_gate" not in RUNS:
        test_a_failed_gate_shows_on_the_run_and_in_its_summary(stack)
    run_id, day = RUNS["failed_gate"]
    first, first_weights = _train_output(stack, run_id), _weights_digest(stack)
    assert first["epochs"] == 1

    part = write_day(stack.settings.lake, day, ROWS, seed=11)  # the producer re-delivers the day
    _rerun(stack, run_id, "plan")  # what PartitionChangedError tells the user to do
    second = _train_output(stack, run_id)
    assert second["run_id"] != first["run_id"] and not second["reused"]
    assert second["epochs"] == 1  # trained, not resumed at the last epoch of the old data
    assert _weights_digest(stack) != first_weights
    log = stack.task_log(run_id, "train", try_number=2)
    assert "starting fresh at epoch 1" in log and "data.sha256" in log, log[-3000:]
    version = next(v for v in client().search_model_versions(f"name = '{MODEL}'") if v.run_id == second["run_id"])
    assert version.tags["data.sha256"] == partitions_sha256(sorted(part.glob("*.parquet")))
