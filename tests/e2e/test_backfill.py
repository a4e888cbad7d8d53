"""The README's backfill, verbatim, against a live stack (scheduler, api-server, LocalExecutor).

Five days, two runs at a time: every run validates (GX context shared, taking turns), trains,
registers a candidate, and leaves the champion where it was. Re-running them changes no alias
and no tag of their decisions; a backfill allowed to promote moves the champion only to a
newer window that passes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import time

import mlflow
import pytest

from include.mlops.datagen import write_day
from include.mlops.localstack import DAG_ID, Stack
from tests.conftest import ROOT, TRAINER_VENV

pytestmark = pytest.mark.e2e
MODEL = "fraud-detector"
ROWS = 20000
FIRST = dt.date(2026, 1, 1)


def readme_command(marker: str) -> list[str]:
    """The README's shell command that contains `marker`, as argv (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if marker in command:
                return shlex.split(command.split("#", 1)[0])
    raise AssertionError(f"no README command contains {marker!r}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("backfill_home")
    s = Stack(home, trainer_venv=TRAINER_VENV, env={"MLOPS_DATA_WAIT_HOURS": "0"})
    for i in range(9):
        write_day(s.settings.lake, FIRST + dt.timedelta(days=i), ROWS)
    s.start()
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    yield s
    s.stop()


def run_cli(stack, argv: list[str]) -> subprocess.CompletedProcess:
    assert argv[:3] == [".venv/bin/python", "-m", "include.mlops.cli"], argv
    for _attempt in range(3):
        out = subprocess.run(
            [sys.executable, *argv[1:]], env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        # The embedded SQLite default: a writer can lose the lock to the scheduler; retry.
        if out.returncode == 0 or "database is locked" not in out.stdout + out.stderr:
            break
        time.sleep(5)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def backfill_runs(stack, expected: int, timeout: float = 900) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100").json()["dag_runs"]
        if len(runs) >= expected and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(5)
    raise AssertionError(f"backfill did not finish: {[(r['dag_run_id'], r['state']) for r in runs]}\n{stack.tail()}")


def versions() -> dict[str, dict]:
    found = mlflow.MlflowClient().search_model_versions(f"name = '{MODEL}'")
    return {str(v.version): dict(v.tags) for v in found}


def aliases() -> dict[str, str]:
    return {k: str(v) for k, v in mlflow.MlflowClient().get_registered_model(MODEL).aliases.items()}


def test_readme_backfill_registers_five_candidates_and_leaves_the_champion(stack):
    # The champion: a manual run on the window ending 2026-01-05.
    run_id = stack.trigger({"partition_date": "2026-01-05", "epochs": 4, "min_pr_auc": 0.2})
    assert stack.wait(run_id) == "success", stack.tail()
    champion = aliases()["champion"]

    argv = readme_command("backfill create")
    assert "--max-active-runs" in argv
    run_cli(stack, argv)
    runs = backfill_runs(stack, 5)
    assert sorted(r["data_interval_start"][:10] for r in runs) == [f"2026-01-0{d}" for d in range(3, 8)]
    assert [r["state"] for r in runs] == ["success"] * 5, stack.tail()
    registered = versions()
    assert len(registered) == 6  # the champion and five candidates
    assert aliases()["champion"] == champion
    decisions = [json.loads(t["promotion.decision"]) for v, t in registered.items() if v != champion]
    assert {d["decision"] for d in decisions} <= {"held", "rejected"}
    assert any("backfill run" in d["reason"] for d in decisions)
    for run in runs:
        states = stack.task_states(run["dag_run_id"])
        assert states["validate"] == "success" and states["register"] == "success"
        # The run's data interval picks its day; the window is the 3 days ending there.
        plan = stack.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/plan/xcomEntries/return_value"
        ).json()["value"]
        day = dt.date.fromisoformat(run["data_interval_start"][:10])
        assert plan["partitions"] == [(day - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0)]


def test_rerunning_the_backfill_changes_no_alias_and_no_tag(stack):
    before_versions, before_aliases = versions(), aliases()
    ended = {r["dag_run_id"]: r["end_date"] for r in backfill_runs(stack, 5)}
    run_cli(stack, [*readme_command("backfill create"), "--reprocess-behavior", "completed"])
    runs = backfill_runs(stack, 5)
    assert {r["dag_run_id"] for r in runs} == set(ended)
    assert all(r["end_date"] != ended[r["dag_run_id"]] for r in runs)  # each one ran again
    assert [r["state"] for r in runs] == ["success"] * 5, stack.tail()
    assert versions() == before_versions
    assert aliases() == before_aliases


def test_a_backfill_allowed_to_promote_moves_only_to_a_newer_passing_window(stack):
    before = aliases()["champion"]
    argv = readme_command("backfill create")
    # A wide tolerance: 20k-row days make PR-AUC noisy, and this test is about the backfill policy.
    conf = json.dumps(
        {
            "epochs": 4,
            "promote_from_backfill": True,
            "min_pr_auc": 0.2,
            "max_regression": 0.2,
            "slice_max_regression": None,
        }
    )
    argv = [*argv[: argv.index("--from-date")], "--from-date", "2026-01-08", "--to-date", "2026-01-09",
            "--max-active-runs", "1", "--dag-run-conf", conf]  # fmt: skip
    run_cli(stack, argv)
    runs = backfill_runs(stack, 7)
    assert all(r["state"] == "success" for r in runs), stack.tail()
    registered = versions()
    newest = {t["data.partitions"][-10:]: (v, json.loads(t["promotion.decision"])) for v, t in registered.items()}
    champion = aliases()["champion"]
    assert champion != before
    assert registered[champion]["data.partitions"][-10:] in ("2026-01-08", "2026-01-09")
    v9, decided9 = newest["2026-01-09"]
    assert (champion == v9) == (decided9["decision"] == "promoted")
