"""MLflow tracking helpers shared by the control plane and the trainer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


# MLflow 3's UI opens an experiment on its kind's page: without the tag it may land on the
# (empty) GenAI traces page instead of the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# A saved view of the experiment's runs table (MLflow's "share view": an experiment tag the UI
# reads when a link carries ``?viewStateShareKey=<key>``): the metrics that decide promotion
# as columns, newest runs first. MLflow's default shows none of them.
RUNS_VIEW_KEY = "mlops-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
RUNS_VIEW_COLUMNS = (
    "metrics.`holdout_pr_auc`",
    "metrics.`holdout_roc_auc`",
    "metrics.`holdout_recall_at_fpr_0.01`",
    "metrics.`throughput_examples_per_sec`",
    "params.`horovod_size`",
    "params.`epochs`",
    "tags.`airflow.run_id`",
    "attributes.`Models`",
)


def runs_view_state() -> str:
    import json

    return json.dumps(
        {
            "searchFilter": "",
            "orderByKey": "attributes.start_time",
            "orderByAsc": False,
            "startTime": "ALL",
            "lifecycleFilter": "Active",
            "modelVersionFilter": "All Runs",
            "datasetsFilter": [],
            "selectedColumns": list(RUNS_VIEW_COLUMNS),
        },
        sort_keys=True,
    )


def _ensure_experiment_tags(client: MlflowClient, experiment) -> None:
    wanted = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, RUNS_VIEW_TAG: runs_view_state()}
    for key, value in wanted.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)


def artifact_location(artifact_root: str, experiment: str) -> str:
    """Where an experiment's artifacts go: a URI, or a local directory made absolute."""
    if "://" in artifact_root:
        return f"{artifact_root.rstrip('/')}/{experiment}"
    return (Path(artifact_root) / experiment).resolve().as_uri()


def ensure_experiment(tracking_uri: str, experiment: str, artifact_root: str | None) -> str:
    """Create the experiment if missing (with an explicit artifact location); return its id.

    With a database tracking URI MLflow would otherwise put artifacts under the current
    working directory.
    """

    client = mlflow_client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        _ensure_experiment_tags(client, found)
        return found.experiment_id
    # An MLflow server proxies artifacts itself (mlflow-artifacts:/): a local directory would be
    # one only this machine can write.
    served = tracking_uri.startswith(("http://", "https://")) and "://" not in (artifact_root or "")
    location = artifact_location(artifact_root, experiment) if artifact_root and not served else None
    try:
        return client.create_experiment(
            experiment,
            artifact_location=location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, RUNS_VIEW_TAG: runs_view_state()},
        )
    except Exception:
        # Created concurrently by another process: use theirs.
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def mlflow_client(tracking_uri: str | None = None) -> MlflowClient:
    """The one way this project gets an MLflow client: for ``tracking_uri``, else ``MLFLOW_TRACKING_URI``.

    It also makes that URI the process's tracking URI, so ``mlflow.*`` calls that follow (logging,
    ``models:/`` loads) talk to the same store as the client.
    """
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at; None only when the model or the alias does not exist.

    Fails closed: any other registry error (unreachable server, permissions, a malformed
    request) propagates, so nothing downstream mistakes it for "no champion yet".
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return client.get_model_version(name, str(version)) if version is not None else None
