"""Airflow UI links to the model registry and the validation reports.

Adds "MLflow" to the navigation bar (the tracking and registry UI) and a "Model registry"
view on each DAG run. ``MLOPS_MLFLOW_UI_URL`` sets the address (default: the local
``make mlflow-ui``).
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin

MLFLOW_UI_URL = os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


class MlopsLinksPlugin(AirflowPlugin):
    name = "mlops_links"
    external_views = [  # noqa: RUF012 - AirflowPlugin declares these as class attributes
        {
            "name": "MLflow",
            "href": MLFLOW_UI_URL,
            "destination": "nav",
            "category": "browse",
            "url_route": "mlflow",
        },
        {
            "name": "Model registry",
            "href": f"{MLFLOW_UI_URL}/#/models",
            "destination": "dag_run",
            "url_route": "mlflow_models",
        },
    ]
