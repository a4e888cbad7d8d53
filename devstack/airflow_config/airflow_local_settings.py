"""Airflow's local settings on the embedded default (LocalExecutor): tasks start with their libraries loaded.

Airflow imports this module (``airflow_local_settings``, found on ``PYTHONPATH``, which
``devstack.embedded.embedded_env`` points here) in each of its processes. In the scheduler it
imports the libraries the pipeline's tasks use, before the LocalExecutor forks its workers: every
task is a fork of a worker, so it starts with them loaded instead of importing them again (about
1.6 CPU-s for MLflow and 3.7 for Great Expectations, per task, on a 2-core machine). Nothing else
changes: the same modules, the same versions, imported earlier. ``MLOPS_PRELOAD_TASK_MODULES=0``
turns it off; production executors (Celery, Kubernetes) start their tasks their own way.
"""

from __future__ import annotations

import importlib
import os
import sys

PRELOADED = ("mlflow", "great_expectations", "pandas", "pyarrow.parquet", "include.mlops.pipeline")


def _preload_in_scheduler() -> None:
    if sys.argv[1:2] != ["scheduler"] or os.environ.get("MLOPS_PRELOAD_TASK_MODULES", "1") == "0":
        return
    for name in PRELOADED:
        importlib.import_module(name)


_preload_in_scheduler()
