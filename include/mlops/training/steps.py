"""The pipeline's trainer steps: launch training (or reuse this DAG run's finished training) and evaluation.

``launch_training`` and ``launch_evaluation`` run their job with the local launcher; the Kubernetes
operators (``training.k8s.operators``) make the same checks (``reusable_training``) before a pod.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.mlops.common.dataset import load_dataset_config
from include.mlops.pipeline import check_unchanged
from include.mlops.settings import Settings, get_settings
from include.mlops.training.jobs import evaluate_job_spec, run_trainer_job_locally, train_job_spec

if TYPE_CHECKING:
    from include.mlops.runs import RunRef

log = logging.getLogger(__name__)


def find_finished_training(
    settings: Settings, run: RunRef, plan_: dict[str, Any], job_name: str | None = None
) -> dict[str, Any] | None:
    """This DAG run's finished training run on the plan's bytes (and, if given, this job), if any."""
    import mlflow

    sha256 = plan_["sha256"]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    cfg = load_dataset_config(settings.dataset_config_path(plan_["dataset"]))
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        return None
    job_filter = f" and tags.`mlops.job_name` = '{job_name}'" if job_name else ""
    found = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=(
            f"tags.`mlops.job` = 'train' and tags.`airflow.dag_id` = '{run.dag_id}' and "
            f"tags.`airflow.run_id` = '{run.run_id}' and tags.`data.sha256` = '{sha256}' and "
            f"attributes.status = 'FINISHED'{job_filter}"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not found:
        return None
    r = found[0]
    models = mlflow.search_logged_models(
        experiment_ids=[exp.experiment_id],
        filter_string=f"source_run_id = '{r.info.run_id}'",
        output_format="list",
    )
    if not models:
        return None
    return {
        "run_id": r.info.run_id,
        "experiment_id": r.info.experiment_id,
        "model_uri": f"models:/{models[0].model_id}",
        "horovod_size": int(r.data.params.get("horovod_size", 0)),
        "examples_per_sec": r.data.metrics.get("throughput_examples_per_sec"),
        "epochs": int(r.data.params.get("epochs", 0)),
        "train_rows": int(r.data.params.get("train_rows", 0)),
        "git_commit": r.data.tags.get("code.git_commit"),
        "reused": True,
    }


def reusable_training(
    plan_: dict[str, Any], run: RunRef, params: dict[str, Any], settings: Settings
) -> dict[str, Any] | None:
    """Checks made before any job starts: data unchanged, and no finished training to reuse."""
    check_unchanged(plan_, settings)
    if params.get("force_retrain"):
        return None
    previous = find_finished_training(settings, run, plan_)
    if previous:
        log.info("reusing finished training run %s of this DAG run", previous["run_id"])
    return previous


def launch_training(
    plan_: dict[str, Any],
    run: RunRef,
    params: dict[str, Any],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Launch Horovod training (or reuse this DAG run's finished training); return references."""
    settings = settings or get_settings()
    previous = reusable_training(plan_, run, params, settings)
    if previous:
        return previous
    spec = train_job_spec(plan_, run, params, settings, job_name=f"local-{run.safe_run_id}")
    result = run_trainer_job_locally(spec, settings)
    result["reused"] = False
    return result


def launch_evaluation(
    plan_: dict[str, Any], training: dict[str, Any], run: RunRef, settings: Settings | None = None
) -> dict[str, Any]:
    """Score candidate and champion on the same held-out rows (in the trainer environment)."""
    settings = settings or get_settings()
    return run_trainer_job_locally(evaluate_job_spec(plan_, training, run, settings), settings)
