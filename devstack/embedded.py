"""The embedded default's environment and first start: what every harness of this package runs on.

``embedded_env`` fills in the embedded defaults (Airflow on SQLite with LocalExecutor, MLflow on SQLite,
the lake under ``.local/``) for whatever the environment leaves unset; ``bootstrap`` creates that state
once. The CLI (``devstack.cli``), the embedded stack and the ``make up`` stack all start from here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.mlops.settings import Settings


def embedded_env(settings: Settings, api_port: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow and the pipeline on the embedded default.

    Keys already set in `base` (default: the current environment) win, so production
    settings pass through untouched. The API port: `api_port`, else ``AIRFLOW__API__PORT``, else
    8080; the tasks' execution API follows it (a moved port with the default execution URL fails
    every task with "connection refused").
    """
    env = dict(os.environ if base is None else base)
    api_port = api_port or int(env.get("AIRFLOW__API__PORT") or 8080)
    home = settings.home
    airflow_home = home / "airflow"
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # SQLite serialises writers: wait up to 30 s for the lock instead of the default 5 s
        # (the api-server, scheduler, dag-processor and tasks all write).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}?timeout=30",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        # Every task calls the api-server's execution API. On a saturated 2-core machine an answer
        # took longer than the default 5 s and the task failed (ReadTimeout); wait up to 30 s.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "GX_ANALYTICS_ENABLED": "false",
        # Embedded default: the scheduler's own run for a day the demo lake does not have is
        # skipped with its reason, not failed at every start (production: fail, and alert).
        "MLOPS_MISSING_DATA": "skip",
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLOPS_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "MLOPS_TRAINER_VENV": str(settings.trainer_venv),
        "PYTHONPATH": str(settings.project_root),
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["AIRFLOW__API__PORT"] = str(api_port)
    # Airflow's local settings for the embedded default (devstack/airflow_config): the scheduler
    # loads the tasks' libraries before its LocalExecutor forks the workers that run them.
    config = str(Path(__file__).resolve().parent / "airflow_config")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != config]
    env["PYTHONPATH"] = os.pathsep.join([config, *paths])
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_airflow(args: list[str], env: dict[str, str], check: bool = True, immediate: bool = False) -> int:
    """Run ``airflow args``; `immediate`: on SQLite, transactions that lock when they begin."""
    if immediate and env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").startswith("sqlite"):
        cmd = [sys.executable, "-m", "devstack.airflow_sqlite", *args]
    else:
        cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    print(f"$ airflow {shlex.join(args)}", flush=True)
    rc = subprocess.call(cmd, env=env)
    if check and rc != 0:
        raise SystemExit(f"airflow {args[0]} failed with exit code {rc}")
    return rc


def _sqlite_wal(conn: str) -> None:
    """Write-ahead logging on the embedded Airflow DB: readers stop blocking the writer.

    The journal mode is stored in the database file, so this is done once after migration.
    """
    if not conn.startswith("sqlite:///"):
        return
    import sqlite3

    path = conn.removeprefix("sqlite:///").split("?", 1)[0]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")


def ensure_dataset_experiments(settings: Settings, tracking_uri: str, artifact_root: str | None) -> list[str]:
    """Each dataset's MLflow experiment (its config names it), so the UI's links work before a first run."""
    from include.mlops.common.dataset import load_dataset_config
    from include.mlops.common.tracking import ensure_experiment

    names = sorted({load_dataset_config(path).experiment for path in settings.datasets_dir.glob("*.yaml")})
    for name in names:
        ensure_experiment(tracking_uri, name, artifact_root)
    return names


def bootstrap(settings: Settings) -> dict[str, str]:
    env = embedded_env(settings)
    for sub in ("airflow", "mlflow/artifacts", "lake", "gx", "runs"):
        (settings.home / sub).mkdir(parents=True, exist_ok=True)
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if not passwords.exists():
        # Local-only credentials for the embedded default; production uses its auth manager.
        passwords.write_text(json.dumps({"admin": "admin"}))
    stamp = settings.home / "airflow" / ".migrated"
    if not stamp.exists():
        run_airflow(["db", "migrate"], env)
        _sqlite_wal(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        stamp.write_text(dt.datetime.now(dt.UTC).isoformat())
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_ARTIFACT_ROOT")})
    ensure_dataset_experiments(settings, settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    return env
