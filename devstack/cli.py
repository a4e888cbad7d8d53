"""Embedded-default operations: bootstrap, demo, and Airflow/MLflow with the right environment.

    python -m devstack.cli bootstrap     # .local/: Airflow DB, MLflow store, lake
    python -m devstack.cli demo          # data for the next day + one run through Airflow
    python -m devstack.cli env           # print the environment (eval "$(... env)")
    python -m devstack.cli airflow ARGS  # the airflow CLI against .local/airflow
    python -m devstack.cli standalone    # Airflow UI/API on :8080 (scheduler included)
    python -m devstack.cli mlflow-ui     # MLflow UI on :5000

Production sets the same variables (AIRFLOW__*, MLFLOW_TRACKING_URI, MLOPS_*) itself; this
module only fills in the embedded defaults for what is unset.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.embedded import bootstrap, embedded_env, run_airflow
from include.mlops.common.files import FileLockTimeout, exclusive_file_lock
from include.mlops.runs import RunRef
from include.mlops.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

DAG_ID = "fraud_model_pipeline"
DEMO_START = dt.date(2026, 1, 1)
DEMO_ROWS = 100_000
DEMO_WINDOW = 3


def _demo_state_path(settings: Settings) -> Path:
    return settings.home / "demo-state.json"


def demo(settings: Settings) -> int:
    from devstack.datagen import write_day

    t0 = time.monotonic()
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
    print(f"==> running {DAG_ID} for {day} through Airflow (scheduler, api-server, dag-processor)", flush=True)
    # Two ranks, to show data parallelism; left empty, horovod_np is one rank on a machine
    # without GPUs (faster there: README, "How many ranks").
    conf = {"partition_date": day.isoformat(), "window_days": DEMO_WINDOW, "horovod_np": 2}
    try:
        with one_airflow(settings):
            run_id, state, failed_logs = _run_through_airflow(settings, conf)
    except FileLockTimeout:
        print(
            f"!! Airflow is already running on {settings.home} (make airflow): trigger {DAG_ID} from its UI, "
            "or stop it and run make demo again",
            file=sys.stderr,
        )
        return 1
    summary_path = settings.runs_dir / DAG_ID / RunRef(DAG_ID, run_id).safe_run_id / "summary.json"
    if state != "success" or not summary_path.exists():
        for task_id, log in failed_logs.items():
            print(f"\n--- {task_id} (failed), end of its log ---\n{log}", file=sys.stderr)
        print(f"\n!! {DAG_ID} run {run_id} for {day} ended {state}", file=sys.stderr)
        return 1
    summary = json.loads(summary_path.read_text())
    state_path.write_text(json.dumps({"last_completed": day.isoformat()}))
    print_summary(summary, settings, time.monotonic() - t0)
    return 0


@contextlib.contextmanager
def one_airflow(settings: Settings) -> Iterator[None]:
    """At most one Airflow (``make airflow`` or the demo's) on one embedded home: two schedulers
    on one SQLite database would fight over every run."""
    with exclusive_file_lock(settings.home / "airflow" / "standalone.lock", timeout=1):
        yield


def _run_through_airflow(settings: Settings, conf: dict) -> tuple[str, str, dict[str, str]]:
    """Start Airflow on this home, trigger one run over the REST API as a user would, wait for
    it, stop Airflow. Returns the run id, its state and the end of each failed task's log."""
    from devstack.embedded_stack import Stack

    keep = {k: v for k, v in os.environ.items() if k.startswith(("MLOPS_", "MLFLOW_"))}
    stack = Stack(settings.home, env=keep)
    print(f"==> bootstrap ({settings.home}) and start Airflow", flush=True)
    stack.start()  # bootstraps the home (Airflow DB, MLflow store) first
    try:
        run_id = stack.trigger(conf)
        print(f"    triggered {run_id}; Airflow logs in {stack.logfile}", flush=True)
        state = stack.wait(run_id, timeout=3600)
        failed = [t for t, s in stack.task_states(run_id).items() if s == "failed"]
        logs = {t: "\n".join(stack.task_log(run_id, t).splitlines()[-40:]) for t in failed}
        return run_id, state, logs
    finally:
        stack.stop()


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
        f"promotion   {(summary.get('promotion') or {}).get('decision') or '-'}: "
        f"{(summary.get('promotion') or {}).get('reason') or ''}",
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
    parser = argparse.ArgumentParser(prog="python -m devstack.cli", description=__doc__.splitlines()[0])
    commands = ["bootstrap", "demo", "env", "airflow", "standalone", "mlflow-ui", "scaffold-dataset"]
    parser.add_argument("command", choices=commands)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    if ns.command == "scaffold-dataset":
        from devstack.scaffold import main as scaffold_main

        return scaffold_main(ns.args)
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
        from include.mlops.airflow.run_conf import airflow_command_problem

        os.environ.update(env)  # parse the DAGs with the same configuration airflow will use
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # this process: the answer only
        problem = airflow_command_problem(ns.args, env["AIRFLOW__CORE__DAGS_FOLDER"])
        if problem:
            print(f"airflow {' '.join(ns.args[:2])}: {problem}", file=sys.stderr)
            return 2
        # A CLI writing beside the running scheduler (backfill create, dags trigger): on the
        # embedded SQLite, see devstack/airflow_sqlite.py.
        return run_airflow(ns.args, env, check=False, immediate=True)
    if ns.command == "standalone":
        bootstrap(settings)
        try:
            with one_airflow(settings):
                return run_airflow(["standalone"], env, check=False)
        except FileLockTimeout:
            print(f"Airflow is already running on {settings.home} (make airflow or make demo)", file=sys.stderr)
            return 1
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
