"""Embedded-default operations: bootstrap, demo, and Airflow/MLflow with the right environment.

    python -m include.mlops.cli bootstrap     # .local/: Airflow DB, MLflow store, lake
    python -m include.mlops.cli demo          # data for the next day + one full pipeline run
    python -m include.mlops.cli env           # print the environment (eval "$(... env)")
    python -m include.mlops.cli airflow ARGS  # the airflow CLI against .local/airflow
    python -m include.mlops.cli standalone    # Airflow UI/API on :8080 (scheduler included)
    python -m include.mlops.cli mlflow-ui     # MLflow UI on :5000

Production sets the same variables (AIRFLOW__*, MLFLOW_TRACKING_URI, MLOPS_*) itself; this
module only fills in the embedded defaults for what is unset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from include.mlops.settings import Settings, get_settings

DAG_ID = "fraud_model_pipeline"
DEMO_START = dt.date(2026, 1, 1)
DEMO_ROWS = 100_000
DEMO_WINDOW = 3


def embedded_env(settings: Settings, api_port: int = 8080, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow and the pipeline on the embedded default.

    Keys already set in `base` (default: the current environment) win, so production
    settings pass through untouched.
    """
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
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "GX_ANALYTICS_ENABLED": "false",
        # Embedded default: the scheduler's own run for a day the demo lake does not have is
        # skipped with its reason, not failed at every start (production: fail, and alert).
        "MLOPS_MISSING_DATA": "skip",
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLOPS_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "MLOPS_EXPERIMENT": settings.experiment,
        "MLOPS_TRAINER_VENV": str(settings.trainer_venv),
        "PYTHONPATH": str(settings.project_root),
    }
    env = dict(os.environ if base is None else base)
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _airflow(args: list[str], env: dict[str, str], check: bool = True) -> int:
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


def bootstrap(settings: Settings) -> dict[str, str]:
    from include.mlops.tracking import ensure_experiment

    env = embedded_env(settings)
    for sub in ("airflow", "mlflow/artifacts", "lake", "gx", "runs"):
        (settings.home / sub).mkdir(parents=True, exist_ok=True)
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if not passwords.exists():
        # Local-only credentials for the embedded default; production uses its auth manager.
        passwords.write_text(json.dumps({"admin": "admin"}))
    stamp = settings.home / "airflow" / ".migrated"
    if not stamp.exists():
        _airflow(["db", "migrate"], env)
        _sqlite_wal(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        stamp.write_text(dt.datetime.now(dt.UTC).isoformat())
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_ARTIFACT_ROOT")})
    ensure_experiment(settings.mlflow_tracking_uri, settings.experiment, settings.mlflow_artifact_root)
    return env


def _demo_state_path(settings: Settings) -> Path:
    return settings.home / "demo-state.json"


def demo(settings: Settings) -> int:
    from include.mlops.datagen import write_day

    t0 = time.monotonic()
    print("==> bootstrap (.local/)", flush=True)
    env = bootstrap(settings)
    state_path = _demo_state_path(settings)
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last = state.get("last_completed")
    day = (
        dt.date.fromisoformat(last) + dt.timedelta(days=1) if last else DEMO_START + dt.timedelta(days=DEMO_WINDOW - 1)
    )
    print(f"==> data: window of {DEMO_WINDOW} days ending {day} ({DEMO_ROWS} rows/day)", flush=True)
    for i in range(DEMO_WINDOW):
        d = day - dt.timedelta(days=DEMO_WINDOW - 1 - i)
        if not (settings.lake / "transactions" / f"date={d.isoformat()}").exists():
            write_day(settings.lake, d, DEMO_ROWS)
            print(f"    generated {d}", flush=True)
    print(f"==> running {DAG_ID} for {day} through Airflow (dags test)", flush=True)
    _airflow(["dags", "reserialize"], env)
    conf = {"partition_date": day.isoformat(), "window_days": DEMO_WINDOW}
    rc = _airflow(
        ["dags", "test", DAG_ID, f"{day.isoformat()}T00:00:00+00:00", "-c", json.dumps(conf)], env, check=False
    )
    summary_path = settings.runs_dir / "latest-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if rc != 0 or not summary or summary.get("partitions", [None])[-1] != day.isoformat():
        print(f"\n!! {DAG_ID} failed for {day}: see the task logs above", file=sys.stderr)
        return 1
    state_path.write_text(json.dumps({"last_completed": day.isoformat()}))
    print_summary(summary, settings, time.monotonic() - t0)
    return 0


def print_summary(summary: dict, settings: Settings, seconds: float) -> None:
    v, t, g, r = summary["validation"], summary["training"], summary["gate"], summary["registry"]
    lines = [
        "",
        f"=== {summary['dag_id']} run {summary['run_id']} ({seconds:.0f} s) ===",
        f"data        {summary['dataset']} partitions {', '.join(summary['partitions'])} (sha256 {summary['data_sha256'][:12]})",
        f"validation  {'PASSED' if v['success'] else 'FAILED'}: {v['expectations_evaluated']} expectations",
        f"training    {t['horovod_ranks']} Horovod ranks, {t['examples_per_sec'] or 0:.0f} examples/s, MLflow run {t['mlflow_run_id']}",
        f"gate        {'PASSED' if g['passed'] else 'FAILED'}",
        *[f"              {reason}" for reason in g["reasons"][:8]],
        f"registry    {r['model']} version {r['version']} aliases: {', '.join(r['aliases']) or '-'} (champion: v{r['champion_version']})",
        "",
        "where to look next:",
        f"  Data Docs    {v['data_docs']}",
        f"  MLflow UI    make mlflow-ui   -> http://127.0.0.1:5000 ({settings.mlflow_tracking_uri})",
        "  Airflow UI   make airflow     -> http://localhost:8080 (admin / admin)",
        f"  model        models:/{r['model']}@champion",
        "  next day     make demo (trains a new candidate for the next day)",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.mlops.cli", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["bootstrap", "demo", "env", "airflow", "standalone", "mlflow-ui"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    settings = get_settings()
    if ns.command == "bootstrap":
        bootstrap(settings)
        return 0
    if ns.command == "demo":
        return demo(settings)
    env = embedded_env(settings)
    if ns.command == "env":
        keys = sorted(k for k in env if k.startswith(("AIRFLOW", "MLOPS", "MLFLOW", "GX_")) or k == "PYTHONPATH")
        print("\n".join(f"export {k}={shlex.quote(env[k])}" for k in keys))
        return 0
    if ns.command == "airflow":
        from include.mlops.run_conf import airflow_command_problem

        os.environ.update(env)  # parse the DAGs with the same configuration airflow will use
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # this process: the answer only
        problem = airflow_command_problem(ns.args, env["AIRFLOW__CORE__DAGS_FOLDER"])
        if problem:
            print(f"airflow {' '.join(ns.args[:2])}: {problem}", file=sys.stderr)
            return 2
        return _airflow(ns.args, env, check=False)
    if ns.command == "standalone":
        bootstrap(settings)
        return _airflow(["standalone"], env, check=False)
    # mlflow-ui
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return subprocess.call(
        [
            mlflow,
            "ui",
            "--backend-store-uri",
            settings.mlflow_tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            "5000",
            *ns.args,
        ],
        env=env,
    )


if __name__ == "__main__":
    raise SystemExit(main())
