"""The README's CLI backfills, verbatim, against a real Airflow 3 (embedded Stack, SQLite),
real `horovodrun` training (the README leaves the ranks empty: one rank on a machine without GPUs)
and a real MLflow store.

The README's promoting backfill (2026-01-09..10, one run at a time) makes the champion: it
moves at most to the newest candidate that passes. Then the README's backfill (2026-01-05..07,
two runs at a time) registers a candidate a day and leaves it; re-running one of those days, even
with promotion allowed, changes nothing; a day without data fails in `plan`, in one line. Each
test asks for the backfills it builds on as fixtures, so any one of them runs alone.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import mlflow
import pytest

from devstack.datagen import write_day
from devstack.embedded_stack import DAG_ID, Stack
from tests.conftest import DAY0, TRAINER_VENV
from tests.e2e.embedded import MODEL, client, registry_state, run_wrapper, version_tags
from tests.readme import readme_command

pytestmark = pytest.mark.e2e
ROWS = 25000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("backfill_home")
    s = Stack(home, trainer_venv=TRAINER_VENV, env={"MLOPS_DATA_WAIT_HOURS": "0"})
    for i in range(10):  # 2026-01-01..10: `make demo`'s days and the README's two datagen lines
        write_day(s.settings.lake, DAY0 + dt.timedelta(days=i), ROWS)
    s.start()
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    yield s
    s.stop()


def backfill_runs(stack, days: list[str], after: str, timeout: float = 1500) -> dict[str, dict]:
    """The backfill runs of `days` once each has ended after `after` (an ISO instant), by day."""
    deadline = time.time() + timeout
    while True:
        runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100").json()["dag_runs"]
        ours = {r["data_interval_start"][:10]: r for r in runs if r["data_interval_start"][:10] in days}
        ended = [r for r in ours.values() if r["state"] in ("success", "failed") and (r["end_date"] or "") > after]
        # Done when its runs have ended and the scheduler has closed the backfill (a new one for
        # the DAG is refused until then).
        if len(ended) == len(days) and not active_backfills(stack):
            return dict(sorted(ours.items()))
        assert time.time() < deadline, (ours, stack.tail())
        time.sleep(3)


def most_side_by_side(runs) -> int:
    """The most runs that were running at one moment."""
    edges = sorted([(r["start_date"], 1) for r in runs] + [(r["end_date"], -1) for r in runs])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def champion_moves() -> list[str]:
    try:
        tags = client().get_registered_model(MODEL).tags
    except mlflow.exceptions.MlflowException:  # not registered yet
        return []
    return sorted(k for k in tags if k.startswith("champion.move."))


def readme_backfill(stack, marker: str, days: list[str], side_by_side: int) -> dict[str, dict]:
    """Run the README's backfill command containing `marker`, verbatim; its runs once ended."""
    argv = readme_command(marker)
    assert argv[argv.index("--max-active-runs") + 1] == str(side_by_side)
    started = now_iso()
    run_wrapper(stack, argv)
    runs = backfill_runs(stack, days, started)
    assert {d: r["state"] for d, r in runs.items()} == dict.fromkeys(days, "success"), stack.tail()
    assert most_side_by_side(runs.values()) == side_by_side  # never more than the command says
    return runs


def active_backfills(stack) -> list[dict]:
    backfills = stack.get(f"/api/v2/backfills?dag_id={DAG_ID}").json()["backfills"]
    return [b for b in backfills if not b["completed_at"]]


@pytest.fixture(scope="module")
def promoting_backfill(stack) -> dict:
    """The README's promoting backfill (2026-01-09..10, one at a time), and the registry before and
    right after it (later backfills add versions)."""
    before, moves = registry_state(), champion_moves()
    days = [f"2026-01-{d:02d}" for d in range(9, 11)]
    runs = readme_backfill(stack, '"promote_from_backfill": true}\'', days, side_by_side=1)
    return {"days": days, "runs": runs, "before": before, "moves": moves,
            "after": registry_state(), "tags": version_tags(), "moves_after": champion_moves()}  # fmt: skip


@pytest.fixture(scope="module")
def readme_backfill_runs(stack, promoting_backfill) -> dict:
    """The README's backfill (2026-01-05..07, two at a time), run once a champion exists, and the
    registry before and right after it."""
    assert registry_state()["aliases"].get("champion"), "the promoting backfill made no champion"
    before, moves = registry_state(), champion_moves()
    days = [f"2026-01-0{d}" for d in range(5, 8)]
    runs = readme_backfill(stack, '"epochs": 4}\'', days, side_by_side=2)
    return {"days": days, "runs": runs, "before": before, "moves": moves,
            "after": registry_state(), "tags": version_tags(), "moves_after": champion_moves()}  # fmt: skip


def test_the_readme_promoting_backfill_moves_the_champion_at_most_to_the_newest_passing_candidate(
    promoting_backfill,
):
    b = promoting_backfill
    days, runs, after, tags = b["days"], b["runs"], b["after"], b["tags"]
    assert sorted(runs, key=lambda d: runs[d]["start_date"]) == days  # oldest first
    new = sorted(set(after["versions"]) - set(b["before"]["versions"]), key=int)
    assert len(new) == len(days)
    decisions = {tags[v]["data.partitions"].rsplit(",", 1)[-1]: json.loads(tags[v]["promotion.decision"]) for v in new}
    version_of = {tags[v]["data.partitions"].rsplit(",", 1)[-1]: v for v in new}
    print({d: (version_of[d], x["decision"], x["reason"][:120]) for d, x in decisions.items()})
    assert all(not x["reason"].startswith("backfill run") for x in decisions.values())
    promoted = [d for d in days if decisions[d]["decision"] == "promoted"]
    assert all(tags[version_of[d]]["gate.passed"] == "true" for d in promoted)
    assert promoted, "no candidate of the promoting backfill passed its gate"
    # The first had no champion to beat; each move after it is to a newer window than the last,
    # and the champion is the newest candidate promoted.
    assert str(after["aliases"]["champion"]) == version_of[promoted[-1]]
    assert len(b["moves_after"]) == len(b["moves"]) + len(promoted)
    for d in days:
        if d > promoted[-1]:  # newer than the champion, and not promoted: its gate failed
            assert decisions[d]["decision"] == "rejected", decisions[d]


def test_the_readme_backfill_registers_a_candidate_a_day_two_at_a_time_and_leaves_the_champion(
    readme_backfill_runs,
):
    """README's backfill, verbatim: 2026-01-05..07, two runs at a time, champion untouched."""
    b = readme_backfill_runs
    before, after, runs, tags = b["before"], b["after"], b["runs"], b["tags"]
    assert after["aliases"]["champion"] == before["aliases"]["champion"] and b["moves_after"] == b["moves"]
    new = sorted(set(after["versions"]) - set(before["versions"]), key=int)
    assert len(new) == len(b["days"])
    assert sorted(tags[v]["airflow.run_id"] for v in new) == sorted(r["dag_run_id"] for r in runs.values())
    for version in new:
        decision = json.loads(tags[version]["promotion.decision"])
        assert decision["decision"] in ("held", "rejected"), decision
        assert decision["decision"] == "rejected" or decision["reason"].startswith("backfill run"), decision
    notes = [r["note"] for r in runs.values()]
    assert all(n.startswith(("**Not promoted (held)**: backfill run", "**Gate failed**")) for n in notes), notes


def test_rerunning_a_backfilled_day_even_allowed_to_promote_changes_no_alias_and_no_tag(stack, readme_backfill_runs):
    before, tags_before, moves = registry_state(), version_tags(), champion_moves()
    argv = readme_command('"epochs": 4}\'')
    cut = argv.index("--from-date")
    conf = json.dumps({"epochs": 4, "promote_from_backfill": True})
    started = now_iso()
    run_wrapper(stack, [*argv[:cut], "--from-date", "2026-01-07", "--to-date", "2026-01-07",
                        "--reprocess-behavior", "completed", "--dag-run-conf", conf])  # fmt: skip
    runs = backfill_runs(stack, ["2026-01-07"], started)
    assert [r["state"] for r in runs.values()] == ["success"], stack.tail()
    assert [r["dag_run_id"] for r in runs.values()] == [readme_backfill_runs["runs"][d]["dag_run_id"] for d in runs]
    assert all(r["conf"]["promote_from_backfill"] is True for r in runs.values())
    assert registry_state() == before and version_tags() == tags_before and champion_moves() == moves


def test_a_backfill_day_without_data_fails_in_plan_with_one_line(stack):
    argv = readme_command('"epochs": 4}\'')
    cut = argv.index("--from-date")
    started = now_iso()
    run_wrapper(stack, [*argv[:cut], "--from-date", "2026-01-20", "--to-date", "2026-01-20"])
    (run,) = backfill_runs(stack, ["2026-01-20"], started, timeout=300).values()
    assert run["state"] == "failed"
    states = stack.task_states(run["dag_run_id"])
    assert states["plan"] == "failed" and states["validate"] == "upstream_failed"
    ti = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/plan").json()
    assert ti["try_number"] == 1  # no retry: waiting does not bring a backfill's day
    log = stack.task_log(run["dag_run_id"], "plan")
    lines = [line for line in log.splitlines() if "run for 2026-01-20: no data for" in line]
    assert lines and "(2026-01-18, 2026-01-19, 2026-01-20)" in lines[0], log[-2000:]
