"""Task links: URLs computed from each task's return value (empty when there is no target)."""

import json

import pytest

from include.mlops.airflow.links import data_docs_url, mlflow_run_url, mlflow_runs_url, model_version_url
from include.mlops.common.tracking import RUNS_VIEW_KEY, runs_view_state

pytestmark = pytest.mark.unit


def test_links_point_at_the_run_the_version_and_the_data_docs_page(monkeypatch):
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.bank.example/")
    assert (
        mlflow_run_url({"run_id": "abc", "experiment_id": "3"})
        == "https://mlflow.bank.example/#/experiments/3/runs/abc"
    )
    assert mlflow_runs_url({"run_id": "abc", "experiment_id": "3"}) == (
        f"https://mlflow.bank.example/#/experiments/3/runs?viewStateShareKey={RUNS_VIEW_KEY}"
    )
    assert model_version_url({"name": "card fraud", "version": "7"}) == (
        "https://mlflow.bank.example/#/models/card%20fraud/versions/7"
    )
    page = "file:///srv/mlops/gx/gx/uncommitted/data_docs/local_site/validations/card_fraud/x/y.html"
    assert data_docs_url({"data_docs": page}) == ""  # no served site configured: no link
    monkeypatch.setenv("MLOPS_DATA_DOCS_URL", "https://docs.bank.example/gx/")
    assert data_docs_url({"data_docs": page}) == "https://docs.bank.example/gx/validations/card_fraud/x/y.html"


def test_no_target_no_link():
    for url_of in (mlflow_run_url, mlflow_runs_url, model_version_url, data_docs_url):
        assert url_of(None) == "" and url_of({}) == "" and url_of("text") == ""


def test_the_saved_runs_view_shows_the_metrics_that_decide_promotion_as_columns():
    view = json.loads(runs_view_state())
    assert "metrics.`holdout_pr_auc`" in view["selectedColumns"]
    assert view["orderByKey"] == "attributes.start_time" and view["orderByAsc"] is False
