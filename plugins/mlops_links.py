"""Airflow UI link to MLflow: "MLflow" in the navigation bar, opening in a new tab.

No iframe: MLflow answers with ``X-Frame-Options: SAMEORIGIN``, so a framed MLflow would stay
blank. Per-run links (the training run, the registered version, the Data Docs page) are task
links, computed when each task ends (``include.mlops.airflow.links``). ``MLOPS_MLFLOW_UI_URL``
sets the address (default: the local ``make mlflow-ui``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.mlops.settings import mlflow_ui_url


class MlopsLinksPlugin(AirflowPlugin):
    name = "mlops_links"
    # Without url_route, a "nav" view is a plain link that the UI opens in a new tab.
    external_views = [  # noqa: RUF012 - AirflowPlugin declares these as class attributes
        {"name": "MLflow", "href": mlflow_ui_url(), "destination": "nav", "category": "browse"},
    ]
