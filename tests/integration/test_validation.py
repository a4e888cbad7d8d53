"""Real Great Expectations 1.x runs of the card_fraud suite on generated partitions."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from devstack.datagen import DEFECTS, write_day
from include.mlops.validation.suite import DataValidationError, quarantine_path, validate_partition, validate_window
from tests.conftest import DAY0
from tests.conftest import validation_kwargs as kwargs

pytestmark = pytest.mark.integration

ROWS = 20000
# What each defect must trip, by expectation type and column.
EXPECTED_FAILURE = {
    "nulls": ("expect_column_values_to_not_be_null", "amount"),
    "missing_column": ("expect_table_columns_to_match_set", None),
    "wrong_type": ("expect_column_values_to_be_in_type_list", "amount"),
    "out_of_range": ("expect_column_values_to_be_between", "hour"),
    "duplicate_ids": ("expect_column_values_to_be_unique", "transaction_id"),
    "raw_card_numbers": ("expect_column_values_to_contain_no_card_numbers", "merchant_descriptor"),
    "label_rate_shift": ("expect_column_mean_to_be_between", "is_fraud"),
    "feature_drift": ("expect_column_median_to_be_between", "amount"),
    "future_timestamps": ("expect_column_values_to_be_between", "event_time"),
    "other_day_timestamps": ("expect_column_values_to_be_between", "event_time"),
    "unknown_category": ("expect_column_values_to_be_in_set", "merchant_category"),
    "label_not_binary": ("expect_column_values_to_be_in_set", "is_fraud"),
    "malformed_card_token": ("expect_column_values_to_match_regex", "card_token"),
    "too_few_rows": ("expect_table_row_count_to_be_between", None),
}


def snapshot(directory):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_suite_covers_the_dataset_config(card_fraud, home):
    suite = json.loads((home.expectations_dir / f"{card_fraud.expectation_suite}.json").read_text())
    by_type = {}
    for e in suite["expectations"]:
        by_type.setdefault(e["type"], set()).add(e["kwargs"].get("column"))
    for col in card_fraud.required_columns:
        assert col in by_type["expect_column_values_to_not_be_null"], col
    for col, vocab in card_fraud.categorical_features.items():
        sets = [
            e
            for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == col
        ]
        assert sets and sets[0]["kwargs"]["value_set"] == list(vocab), f"suite and config disagree on {col}"


def test_clean_partition_passes_and_is_reused(card_fraud, home):
    part = write_day(home.lake, DAY0, ROWS)
    before = snapshot(part)
    first = validate_partition(card_fraud, DAY0, **kwargs(home))
    assert first.success and first.failed == [] and first.evaluated >= 50
    assert (home.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    # The run's own page, not the site's index.
    assert "/data_docs/local_site/validations/card_fraud/" in first.data_docs
    from urllib.parse import unquote

    assert Path(unquote(first.data_docs.removeprefix("file://"))).exists()
    assert not quarantine_path(home.quarantine_dir, "card_fraud", DAY0).exists()
    again = validate_partition(card_fraud, DAY0, **kwargs(home))
    assert again.reused and again.result_id == first.result_id
    assert snapshot(part) == before  # validation never touches the data


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_fails_named_and_quarantined(card_fraud, home, defect):
    day = DAY0 + dt.timedelta(days=3)
    part = write_day(home.lake, day, ROWS, defect=defect)
    before = snapshot(part)
    result = validate_partition(card_fraud, day, **kwargs(home))
    assert not result.success
    expectation, column = EXPECTED_FAILURE[defect]
    assert any(f.expectation == expectation and f.column == column for f in result.failed), [
        f.describe() for f in result.failed
    ]
    q = json.loads(quarantine_path(home.quarantine_dir, "card_fraud", day).read_text())
    assert q["partition"] == day.isoformat() and q["sha256"] == result.sha256
    assert any(f["expectation"] == expectation for f in q["failed_expectations"])
    assert snapshot(part) == before
    assert [p.name for p in part.iterdir()] == ["part-00000.parquet"]  # nothing written into the partition
    if defect == "raw_card_numbers":
        # Counts only: the offending values never reach the record, the docs or the message.
        text = json.dumps(q) + json.dumps(result.to_dict())
        assert "REFUND CARD" not in text
        docs = list((home.gx_root / "gx" / "uncommitted" / "data_docs").rglob("*.html"))
        assert docs and not any("REFUND CARD" in d.read_text() for d in docs)


def test_window_failure_names_every_bad_partition(card_fraud, home):
    days = [DAY0 + dt.timedelta(days=i) for i in range(3)]
    write_day(home.lake, days[0], ROWS)
    write_day(home.lake, days[1], ROWS, defect="nulls")
    write_day(home.lake, days[2], ROWS, defect="duplicate_ids")
    with pytest.raises(DataValidationError) as err:
        validate_window(card_fraud, days, **kwargs(home))
    message = str(err.value)
    assert "partition 2026-01-02" in message and "partition 2026-01-03" in message
    assert "2026-01-01" not in message
    assert "expect_column_values_to_not_be_null[amount]: 400 of 20000 rows unexpected" in message
    assert "expect_column_values_to_be_unique[transaction_id]" in message


def test_changed_bytes_are_revalidated(card_fraud, home):
    write_day(home.lake, DAY0, ROWS)
    assert validate_partition(card_fraud, DAY0, **kwargs(home)).success
    write_day(home.lake, DAY0, ROWS, defect="out_of_range")  # same day, new bytes
    result = validate_partition(card_fraud, DAY0, **kwargs(home))
    assert not result.success and not result.reused


def _break(part, kind):
    """Damage a partition the way producers do; returns the damaged file's name."""
    import pandas as pd

    good = part / "part-00000.parquet"
    if kind == "zero_byte":
        (part / "part-00001.parquet").write_bytes(b"")
        return "part-00001.parquet"
    if kind == "truncated":
        data = good.read_bytes()
        (part / "part-00001.parquet").write_bytes(data[: len(data) // 2])
        return "part-00001.parquet"
    if kind == "csv_named_parquet":
        pd.read_parquet(good).head(100).to_csv(part / "part-00001.parquet", index=False)
        return "part-00001.parquet"
    frame = pd.read_parquet(good)
    if kind == "renamed_column":
        frame.rename(columns={"amount": "amt"}).to_parquet(part / "part-00001.parquet")
        return "part-00001.parquet"
    if kind == "second_file_other_types":
        frame["hour"] = frame["hour"].astype("float64")
        frame.head(100).to_parquet(part / "part-00001.parquet")
        return "part-00001.parquet"
    raise AssertionError(kind)


FILE_DEFECTS = {
    "zero_byte": ("file_is_readable_parquet", "not readable as parquet"),
    "truncated": ("file_is_readable_parquet", "not readable as parquet"),
    "csv_named_parquet": ("file_is_readable_parquet", "not readable as parquet"),
    "renamed_column": ("expect_table_columns_to_match_set", "missing columns ['amount'], unexpected columns ['amt']"),
    "second_file_other_types": ("files_share_one_schema", "hour is double (in part-00000.parquet: int64)"),
}


@pytest.mark.parametrize("kind", sorted(FILE_DEFECTS))
def test_bad_files_fail_validation_naming_the_file(card_fraud, home, kind):
    day = DAY0 + dt.timedelta(days=5)
    part = write_day(home.lake, day, ROWS)
    bad = _break(part, kind)
    before = snapshot(part)
    with pytest.raises(DataValidationError) as err:
        validate_window(card_fraud, [day], **kwargs(home))
    (result,) = err.value.results
    expectation, text = FILE_DEFECTS[kind]
    failure = next(f for f in result.failed if f.expectation == expectation)
    assert failure.error.startswith(f"{bad}: ") and text in failure.error
    assert f"{bad}: " in str(err.value) and "Traceback" not in str(err.value)
    q = json.loads(quarantine_path(home.quarantine_dir, "card_fraud", day).read_text())
    assert q["sha256"] == result.sha256 and bad in q["files"]
    assert snapshot(part) == before


def test_quarantine_blocks_until_the_bytes_change_then_clears_with_history(card_fraud, home):
    day = DAY0 + dt.timedelta(days=6)
    write_day(home.lake, day, ROWS, defect="nulls")
    assert not validate_partition(card_fraud, day, **kwargs(home)).success
    qpath = quarantine_path(home.quarantine_dir, "card_fraud", day)
    assert qpath.exists()
    again = validate_partition(card_fraud, day, **kwargs(home))  # same bytes: blocked, the suite is not run
    assert not again.success and again.failed[0].expectation == "partition_not_quarantined"
    assert "release card_fraud" in again.failed[0].describe()
    write_day(home.lake, day, ROWS)  # fixed upstream: new bytes
    fixed = validate_partition(card_fraud, day, **kwargs(home))
    assert fixed.success and not qpath.exists()
    (kept,) = (qpath.parent / "history").iterdir()
    assert json.loads(kept.read_text())["cleared_by_sha256"] == fixed.sha256


def test_release_command_lists_and_releases(card_fraud, home, capsys):
    from include.mlops.validation import quarantine

    day = DAY0 + dt.timedelta(days=7)
    write_day(home.lake, day, ROWS, defect="duplicate_ids")
    assert not validate_partition(card_fraud, day, **kwargs(home)).success
    assert quarantine.main(["list"]) == 0
    assert f"card_fraud {day.isoformat()} since" in capsys.readouterr().out
    assert quarantine.main(["release", "card_fraud", day.isoformat()]) == 0
    assert not quarantine_path(home.quarantine_dir, "card_fraud", day).exists()
    assert quarantine.main(["release", "card_fraud", day.isoformat()]) == 2
    assert capsys.readouterr().err.strip().endswith("is not in quarantine")
    assert quarantine.main(["release", "card_fraud", "2026/01/01"]) == 2
    # Released: the next validation runs the suite again (and fails again on the same bytes).
    result = validate_partition(card_fraud, day, **kwargs(home))
    assert any(f.expectation == "expect_column_values_to_be_unique" for f in result.failed)


def test_event_time_must_be_a_timestamp(card_fraud, home):
    import pandas as pd

    day = DAY0 + dt.timedelta(days=8)
    part = write_day(home.lake, day, ROWS)
    path = part / "part-00000.parquet"
    frame = pd.read_parquet(path)
    frame["event_time"] = frame["event_time"].astype(str)  # a producer that writes text
    frame.to_parquet(path)
    result = validate_partition(card_fraud, day, **kwargs(home))
    assert not result.success
    assert any(
        f.expectation == "expect_column_values_to_be_between" and f.column == "event_time" for f in result.failed
    )


@pytest.mark.parametrize("pan", ["REFUNDCARD4539588765432105X", "REF 4539.5887.6543.2105"])
def test_card_numbers_in_any_punctuation_fail_as_card_numbers(card_fraud, home, pan):
    import pandas as pd

    day = DAY0 + dt.timedelta(days=9)
    part = write_day(home.lake, day, ROWS)
    path = part / "part-00000.parquet"
    frame = pd.read_parquet(path)
    frame.loc[frame.index[:7], "merchant_descriptor"] = pan
    frame.to_parquet(path)
    with pytest.raises(DataValidationError) as err:
        validate_window(card_fraud, [day], **kwargs(home))
    message = str(err.value)
    assert "expect_column_values_to_contain_no_card_numbers[merchant_descriptor]" in message
    assert "7 of 20000 rows contain a card number (digits not shown)" in message
    digits = "4539588765432105"
    record = quarantine_path(home.quarantine_dir, "card_fraud", day).read_text()
    assert digits[:8] not in message and digits[:8] not in record and "5887.6543" not in record


def _validate_in_process(day_iso, settings_kwargs, queue):
    from include.mlops.common.dataset import load_dataset_config

    cfg = load_dataset_config(settings_kwargs.pop("config"))
    try:
        result = validate_partition(cfg, dt.date.fromisoformat(day_iso), **settings_kwargs)
        queue.put((day_iso, result.success, None))
    except Exception as exc:  # reported to the test, which fails on it
        queue.put((day_iso, False, f"{type(exc).__name__}: {exc}"))


def test_concurrent_validations_share_one_gx_context_safely(card_fraud, home):
    """A backfill validates several days at once in one MLOPS_HOME: each run must succeed."""
    import multiprocessing

    from tests.conftest import ROOT

    days = [DAY0 + dt.timedelta(days=20 + i) for i in range(4)]
    for day in days:
        write_day(home.lake, day, ROWS)
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    procs = [
        spawn.Process(
            target=_validate_in_process,
            args=(day.isoformat(), {**kwargs(home), "config": ROOT / "datasets" / "card_fraud.yaml"}, queue),
        )
        for day in days
    ]
    for p in procs:
        p.start()
    outcomes = sorted(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == [(day.isoformat(), True, None) for day in days]


@pytest.mark.parametrize("producer", ["pyarrow_large_string", "pandas_object", "pandas_python_string"])
def test_string_columns_pass_whichever_way_the_producer_stores_them(card_fraud, home, producer):
    """The suite's string checks (expect_column_values_to_be_of_type "str") hold for ordinary
    parquet writers, not only for the dtype the demo generator writes."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    day = DAY0 + dt.timedelta(days=12)
    part = write_day(home.lake, day, ROWS)
    path = part / "part-00000.parquet"
    frame = pd.read_parquet(path)
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) and c != "event_time"]
    assert len(text) >= 5
    if producer == "pyarrow_large_string":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for c in text:
            table = table.set_column(table.schema.get_field_index(c), c, table[c].cast(pa.large_string()))
        pq.write_table(table, path)
    else:
        dtype = object if producer == "pandas_object" else pd.StringDtype("python")
        frame[text] = frame[text].astype(dtype)
        frame.to_parquet(path, index=False)
    result = validate_partition(card_fraud, day, **kwargs(home))
    assert result.success, [(f.expectation, f.column) for f in result.failed]


def test_numbers_in_a_string_column_fail_its_type_check(card_fraud, home):
    import pandas as pd

    day = DAY0 + dt.timedelta(days=13)
    part = write_day(home.lake, day, ROWS)
    path = part / "part-00000.parquet"
    frame = pd.read_parquet(path)
    frame["channel"] = range(len(frame))
    frame.to_parquet(path, index=False)
    result = validate_partition(card_fraud, day, **kwargs(home))
    assert ("expect_column_values_to_be_of_type", "channel") in {(f.expectation, f.column) for f in result.failed}


def _credit_default_day(lake, day, labels):
    import pandas as pd

    n = len(labels)
    folder = lake / "credit_default" / f"date={day.isoformat()}"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "student": ["No", "Yes"] * (n // 2),
            "balance": [800.0 + i % 300 for i in range(n)],
            "income": [30000.0 + 10 * i for i in range(n)],
            "default": labels,
        }
    ).to_parquet(folder / "part-00000.parquet", index=False)


def test_a_label_the_config_cannot_map_fails_validation_naming_the_values(home):
    from include.mlops.common.dataset import load_dataset_config

    cfg = load_dataset_config(home.dataset_config_path("credit_default"))
    good = ["No"] * 570 + ["Yes"] * 30
    _credit_default_day(home.lake, DAY0, good)
    assert validate_partition(cfg, DAY0, **kwargs(home)).success

    bad = ["No"] * 567 + ["Yes"] * 28 + ["yes"] * 5
    day = DAY0 + dt.timedelta(days=1)
    _credit_default_day(home.lake, day, bad)
    result = validate_partition(cfg, day, **kwargs(home))
    assert not result.success
    label = next(f for f in result.failed if f.expectation == "label_maps_to_positive_or_negative")
    assert label.column == "default" and "'yes' (5 rows)" in label.error
    assert label.describe().startswith("label_maps_to_positive_or_negative[default]: error: dataset 'credit_default'")
    # The suite's own check of the label's values fails too.
    assert ("expect_column_values_to_be_in_set", "default") in {(f.expectation, f.column) for f in result.failed}
