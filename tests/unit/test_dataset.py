import datetime as dt

import pytest

from include.mlops.dataset import (
    DatasetConfigError,
    PartitionNotFoundError,
    load_dataset_config,
    parse_date,
    partitions_sha256,
    window,
)
from tests.conftest import ROOT

CONFIG = (ROOT / "datasets" / "card_fraud.yaml").read_text()


def write(tmp_path, text):
    p = tmp_path / "d.yaml"
    p.write_text(text)
    return p


def test_card_fraud_config(card_fraud):
    assert card_fraud.name == "card_fraud"
    assert card_fraud.label_column == "is_fraud"
    assert "amount" in card_fraud.feature_columns and "merchant_category" in card_fraud.feature_columns
    assert card_fraud.label_column not in card_fraud.feature_columns
    assert card_fraud.partition_dir(ROOT, dt.date(2026, 1, 2)).as_posix().endswith("transactions/date=2026-01-02")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("label_column: is_fraud\n", "", "missing key 'label_column'"),
        ("amount: {transform: log1p}", "amount: {transform: sqrt}", "unknown transform 'sqrt'"),
        ("fraction: 0.2", "fraction: 1.5", "holdout.fraction must be between 0 and 1"),
        ("location: transactions/date={date}", "location: transactions", "must contain '{date}'"),
        ("slices: [channel, merchant_category]", "slices: [amount]", "slice 'amount' must be a categorical"),
        ("channel: [chip,", "channel: [chip, chip,", "distinct values"),
    ],
)
def test_config_errors_name_the_problem(tmp_path, old, new, message):
    assert old in CONFIG
    with pytest.raises(DatasetConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_dataset_config(write(tmp_path, CONFIG.replace(old, new)))


def test_config_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(DatasetConfigError, match="not found"):
        load_dataset_config(tmp_path / "nope.yaml")
    with pytest.raises(DatasetConfigError, match="not valid YAML"):
        load_dataset_config(write(tmp_path, "name: [unclosed"))


def test_window_and_dates():
    assert window(dt.date(2026, 3, 1), 3) == [dt.date(2026, 2, 27), dt.date(2026, 2, 28), dt.date(2026, 3, 1)]
    with pytest.raises(ValueError):
        window(dt.date(2026, 3, 1), 0)
    assert parse_date("2026-01-05") == dt.date(2026, 1, 5)
    for bad in ("2026-1-5", "20260105", "yesterday", None):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            parse_date(bad)


def test_holdout_is_deterministic_and_near_fraction(card_fraud):
    ids = [f"T20260101N{i:07d}" for i in range(20000)]
    a = card_fraud.holdout_mask(ids)
    b = card_fraud.holdout_mask(list(reversed(ids)))[::-1]
    assert (a == b).all()  # depends on the id only, not on position
    assert abs(a.mean() - card_fraud.holdout_fraction) < 0.01


def test_sha256_tracks_bytes_and_names(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"one")
    (tmp_path / "b.parquet").write_bytes(b"two")
    files = sorted(tmp_path.glob("*.parquet"))
    h1 = partitions_sha256(files)
    assert h1 == partitions_sha256(list(reversed(files)))
    (tmp_path / "b.parquet").write_bytes(b"twO")
    assert partitions_sha256(files) != h1


def test_missing_partition_is_named(card_fraud, tmp_path):
    with pytest.raises(PartitionNotFoundError, match="partition 2026-01-09 has no files"):
        card_fraud.partition_files(tmp_path, dt.date(2026, 1, 9))


def test_failed_expectation_messages_read_as_numbers_and_reasons():
    import numpy as np

    from include.mlops.validation import FailedExpectation, _jsonable

    mean = FailedExpectation("expect_column_mean_to_be_between", "is_fraud", None, None, _jsonable(np.float64(0.11574)))
    assert mean.describe() == "expect_column_mean_to_be_between[is_fraud]: observed 0.1157"
    assert _jsonable(np.int64(500)) == 500 and type(_jsonable(np.int64(500))) is int
    blind = FailedExpectation("expect_column_values_to_be_between", "event_time", None, None, None)
    assert blind.describe().endswith("could not be evaluated (are the column's values of the expected type?)")
