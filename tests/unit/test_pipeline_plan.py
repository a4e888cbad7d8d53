"""plan: which partitions a run trains on, and a clear refusal when some are missing."""

import datetime as dt

import pytest

from include.mlops.datagen import write_day
from include.mlops.dataset import PartitionNotFoundError
from include.mlops.pipeline import plan
from tests.conftest import DAY0


def test_missing_partitions_are_named_with_the_runs_day(home):
    write_day(home.lake, DAY0 + dt.timedelta(days=1), 2000)
    day = DAY0 + dt.timedelta(days=2)
    with pytest.raises(PartitionNotFoundError) as err:
        plan("card_fraud", day.isoformat(), 3, None, settings=home)
    message = str(err.value)
    assert message.startswith(f"run for {day.isoformat()}: no data for 2 of the 3 partitions")
    assert f"({DAY0.isoformat()}, {day.isoformat()})" in message and "\n" not in message


def test_plan_hashes_the_window(home):
    for i in range(2):
        write_day(home.lake, DAY0 + dt.timedelta(days=i), 2000)
    out = plan("card_fraud", (DAY0 + dt.timedelta(days=1)).isoformat(), 2, None, settings=home)
    assert out["partitions"] == [DAY0.isoformat(), (DAY0 + dt.timedelta(days=1)).isoformat()]
    assert len(out["sha256"]) == 64 and out["files"] >= 2
