"""Refuse run conf keys a ``strict-params`` DAG does not declare (REST 400 naming the key).

The middleware lives in ``include.mlops.airflow.run_conf``; this file only registers it with the
api-server. Importing it imports nothing heavy (other Airflow components load plugins too).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.mlops.airflow.run_conf import RejectUndeclaredConf


class MlopsStrictParamsPlugin(AirflowPlugin):
    name = "mlops_strict_params"
    fastapi_root_middlewares = [  # noqa: RUF012 - AirflowPlugin declares these as class attributes
        {"name": "reject-undeclared-run-conf", "middleware": RejectUndeclaredConf},
    ]
