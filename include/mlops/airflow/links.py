"""Links from a task instance in the Airflow UI to what it produced (they open in a new tab).

Each link is computed in the worker when the task ends, from the task's own return value,
and stored by Airflow as an XCom; the api-server only reads it back. A link with nothing to
point at (a failed task, no MLflow UI configured) is empty, and the UI hides it.

- ``MLflow run`` on ``train``: the training run in the MLflow UI;
- ``Model version`` on ``register``: the registered version;
- ``Data Docs`` on ``validate``: the newest partition's GX Data Docs page, when
  ``MLOPS_DATA_DOCS_URL`` says where the Data Docs site is served.

``MLOPS_MLFLOW_UI_URL`` is the MLflow UI's address as a person's browser reaches it (default:
``make mlflow-ui``'s http://127.0.0.1:5000).
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink, BaseXCom

from include.mlops.settings import data_docs_site_url, mlflow_ui_url


def mlflow_run_url(output) -> str:
    if not isinstance(output, dict) or not output.get("run_id") or not output.get("experiment_id"):
        return ""
    return f"{mlflow_ui_url()}/#/experiments/{output['experiment_id']}/runs/{output['run_id']}"


def mlflow_runs_url(output) -> str:
    """The experiment's runs table, with the saved view that shows the deciding metrics."""
    from include.mlops.common.tracking import RUNS_VIEW_KEY

    if not isinstance(output, dict) or not output.get("experiment_id"):
        return ""
    return f"{mlflow_ui_url()}/#/experiments/{output['experiment_id']}/runs?viewStateShareKey={RUNS_VIEW_KEY}"


def model_version_url(output) -> str:
    if not isinstance(output, dict) or not output.get("name") or not output.get("version"):
        return ""
    return f"{mlflow_ui_url()}/#/models/{quote(output['name'])}/versions/{output['version']}"


def data_docs_url(output) -> str:
    """The Data Docs page of a validation result, under MLOPS_DATA_DOCS_URL (a served site)."""
    base = data_docs_site_url()
    page = output.get("data_docs") if isinstance(output, dict) else None
    marker = "/data_docs/local_site/"
    if not base or not page or marker not in page:
        return ""
    return f"{base}/{page.split(marker, 1)[1]}"


class _ReturnValueLink(BaseOperatorLink):
    url_of = staticmethod(lambda output: "")

    def get_link(self, operator, *, ti_key) -> str:
        return self.url_of(BaseXCom.get_value(ti_key=ti_key, key="return_value"))


class MlflowRunLink(_ReturnValueLink):
    name = "MLflow run"
    url_of = staticmethod(mlflow_run_url)


class MlflowRunsLink(_ReturnValueLink):
    name = "MLflow runs"
    url_of = staticmethod(mlflow_runs_url)


class ModelVersionLink(_ReturnValueLink):
    name = "Model version"
    url_of = staticmethod(model_version_url)


class DataDocsLink(_ReturnValueLink):
    name = "Data Docs"
    url_of = staticmethod(data_docs_url)


class LinkedPythonOperator(_PythonDecoratedOperator):
    """``@task`` with the links above (the UI shows a link only when it has a target)."""

    operator_extra_links = (MlflowRunLink(), MlflowRunsLink(), ModelVersionLink(), DataDocsLink())


def linked_task(python_callable=None, **kwargs):
    """Like ``@task``, with the MLflow and Data Docs links."""
    from airflow.sdk.bases.decorator import task_decorator_factory

    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=LinkedPythonOperator, **kwargs
    )
