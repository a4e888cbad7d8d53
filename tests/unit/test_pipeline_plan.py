"""plan: which partitions a run trains on, and a clear refusal when some are missing."""

import datetime as dt

import pytest

from devstack.datagen import write_day
from include.mlops.common.dataset import DatasetConfigError, PartitionNotFoundError
from include.mlops.pipeline import plan_window
from tests.conftest import DAY0

pytestmark = pytest.mark.unit


def test_missing_partitions_are_named_with_the_runs_day(home):
    write_day(home.lake, DAY0 + dt.timedelta(days=1), 2000)
    day = DAY0 + dt.timedelta(days=2)
    with pytest.raises(PartitionNotFoundError) as err:
        plan_window("card_fraud", day.isoformat(), 3, None, settings=home)
    message = str(err.value)
    assert message.startswith(f"run for {day.isoformat()}: no data for 2 of the 3 partitions")
    assert f"({DAY0.isoformat()}, {day.isoformat()})" in message and "\n" not in message


def test_plan_hashes_the_window(home):
    for i in range(2):
        write_day(home.lake, DAY0 + dt.timedelta(days=i), 2000)
    out = plan_window("card_fraud", (DAY0 + dt.timedelta(days=1)).isoformat(), 2, None, settings=home)
    assert out["partitions"] == [DAY0.isoformat(), (DAY0 + dt.timedelta(days=1)).isoformat()]
    assert len(out["sha256"]) == 64 and out["files"] >= 2


def test_candidate_and_champion_are_scored_on_the_newest_days_not_the_runs_own(home):
    for i in range(5):
        write_day(home.lake, DAY0 + dt.timedelta(days=i), 2000)
    days = [(DAY0 + dt.timedelta(days=i)).isoformat() for i in range(5)]
    older = plan_window("card_fraud", days[1], 2, None, settings=home)  # a backfill's day, say
    assert older["partitions"] == days[0:2]
    assert older["holdout_partitions"] == days[3:5] and older["holdout_sha256"] != older["sha256"]
    newest = plan_window("card_fraud", days[4], 2, None, settings=home)
    assert newest["holdout_partitions"] == newest["partitions"] and newest["holdout_sha256"] == newest["sha256"]
    # A newest day in quarantine is not scored on: the newest days that are not.
    quarantined = home.quarantine_dir / "card_fraud" / f"date={days[4]}" / "quarantine.json"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_text("{}")
    assert plan_window("card_fraud", days[1], 2, None, settings=home)["holdout_partitions"] == [days[3]]


def test_a_manual_run_without_a_day_trains_on_the_newest_partition_whatever_its_logical_date(home):
    for i in range(2):
        write_day(home.lake, DAY0 + dt.timedelta(days=i), 2000)
    today = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)  # the UI form's logical date: no data that day
    assert (
        plan_window("card_fraud", None, 1, today, settings=home, run_type="manual")["partition_date"]
        == (DAY0 + dt.timedelta(days=1)).isoformat()
    )
    with pytest.raises(PartitionNotFoundError, match="run for 2026-11-28"):
        plan_window("card_fraud", None, 1, today, settings=home, run_type="scheduled")


def test_a_dag_that_runs_a_dataset_whose_config_names_another_dag_fails_in_one_line(home):
    write_day(home.lake, DAY0, 500)
    assert plan_window("card_fraud", DAY0.isoformat(), 1, None, settings=home, dag_id="fraud_model_pipeline")
    with pytest.raises(DatasetConfigError) as raised:
        plan_window("card_fraud", DAY0.isoformat(), 1, None, settings=home, dag_id="credit_default_pipeline")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("DAG credit_default_pipeline runs dataset 'card_fraud', but ")
    assert message.endswith(
        "card_fraud.yaml names dag_id 'fraud_model_pipeline': make the DAG file and the config agree"
    )
