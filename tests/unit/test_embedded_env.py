"""The embedded default's environment: what `make airflow`, `make demo` and the README's wrapper run with."""

import pytest

from devstack.embedded import embedded_env

pytestmark = pytest.mark.unit


def test_the_api_port_moves_with_the_execution_api_that_tasks_call(home):
    default = embedded_env(home, base={})
    assert default["AIRFLOW__API__PORT"] == "8080"
    assert default["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8080/execution/"
    moved = embedded_env(home, base={"AIRFLOW__API__PORT": "8093"})  # README, "Adding a dataset"
    assert moved["AIRFLOW__API__PORT"] == "8093"
    assert moved["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8093/execution/"
    stack = embedded_env(home, api_port=40123, base={})  # a test stack on a free port
    assert stack["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:40123/execution/"


def test_production_settings_pass_through(home):
    conn = "postgresql+psycopg2://airflow@db/airflow"
    env = embedded_env(home, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn, "MLFLOW_TRACKING_URI": "http://mlflow"})
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == conn and env["MLFLOW_TRACKING_URI"] == "http://mlflow"
    assert "MLOPS_EXPERIMENT" not in env  # each dataset's config names its experiment
