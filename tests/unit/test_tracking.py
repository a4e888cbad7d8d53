"""MLflow experiments the pipeline creates open on their training runs in MLflow 3's UI."""

import mlflow
import pytest

from include.mlops.common.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ensure_experiment

pytestmark = pytest.mark.unit


def test_experiment_kind_is_set_on_new_and_existing_experiments(home):
    uri = home.mlflow_tracking_uri
    created = ensure_experiment(uri, "fresh", home.mlflow_artifact_root)
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    older = client.create_experiment("made-before-the-tag")  # as earlier versions of this project did
    assert ensure_experiment(uri, "made-before-the-tag", home.mlflow_artifact_root) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
