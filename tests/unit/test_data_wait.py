"""A scheduled run waits for its own day's partition, then gives up in one line naming the day."""

import datetime as dt

import pytest

from devstack.datagen import write_day
from include.mlops.pipeline import partition_arrival

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 1, 4)
START = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


def test_ready_waiting_and_overdue(home):
    deadline = END + dt.timedelta(hours=6)
    state, line = partition_arrival("card_fraud", DAY, deadline, now=END + dt.timedelta(hours=1))
    assert state == "waiting" and "until 2026-01-05T06:00:00+00:00" in line
    state, line = partition_arrival("card_fraud", DAY, deadline, now=deadline)
    assert state == "overdue"
    assert line.startswith("run for 2026-01-04: partition 2026-01-04 of 'card_fraud' did not arrive at ")
    assert line.endswith("by 2026-01-05T06:00:00+00:00") and "\n" not in line
    write_day(home.lake, DAY, 2000)
    assert partition_arrival("card_fraud", DAY, deadline, now=deadline)[0] == "ready"


def test_only_scheduled_runs_wait_and_an_overdue_one_fails_without_retry(home, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.mlops.airflow.trainer_steps import wait_for_partition

    monkeypatch.setenv("MLOPS_MISSING_DATA", "fail")
    # Manual and backfill runs, and a run naming its day, go straight to plan.
    assert wait_for_partition("card_fraud", START, END, "manual", None) is True
    assert wait_for_partition("card_fraud", START, END, "backfill", None) is True
    assert wait_for_partition("card_fraud", START, END, "scheduled", "2026-01-04") is True
    with pytest.raises(AirflowFailException, match=r"^run for 2026-01-04: partition 2026-01-04 .* did not arrive"):
        wait_for_partition("card_fraud", START, END, "scheduled", None)
    monkeypatch.setenv("MLOPS_DATA_WAIT_HOURS", str(24 * 365 * 100))  # the deadline is far away: keep waiting
    assert wait_for_partition("card_fraud", START, END, "scheduled", None) is False
