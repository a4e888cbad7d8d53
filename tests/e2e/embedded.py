"""Helpers of the end-to-end modules that run the pipeline on an embedded Stack (SQLite)."""

from __future__ import annotations

import subprocess
import sys

import mlflow

from tests.conftest import ROOT

MODEL = "fraud-detector"


def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def version_tags() -> dict:
    return {str(v.version): dict(v.tags) for v in client().search_model_versions(f"name = '{MODEL}'")}


def registry_state() -> dict:
    versions = client().search_model_versions(f"name = '{MODEL}'")
    try:
        aliases = client().get_registered_model(MODEL).aliases
    except mlflow.exceptions.MlflowException:
        aliases = {}
    return {"versions": sorted(str(v.version) for v in versions), "aliases": dict(aliases)}


def run_wrapper(stack, argv: list[str]) -> subprocess.CompletedProcess:
    """`.venv/bin/python -m devstack.cli ...` from the README, against this stack."""
    assert argv[:3] == [".venv/bin/python", "-m", "devstack.cli"], argv
    # No retry: on the embedded SQLite the wrapper's transactions wait for the write lock
    # (devstack/airflow_sqlite.py) instead of failing with "database is locked".
    out = subprocess.run(
        [sys.executable, *argv[1:]], env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out
