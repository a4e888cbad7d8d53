"""The card_fraud suite through GX's SQL engine over DuckDB (out of core) against GX's pandas
engine (in memory): the same verdicts, failures and counts on every defect the generator makes,
on a clean partition, and on a duplicate id spread across two files."""

import datetime as dt
import json
import math
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devstack.datagen import DEFECTS, write_day
from include.mlops.validation.suite import validate_partition
from tests.conftest import DAY0, ROOT
from tests.conftest import validation_kwargs as kwargs
from tests.integration.test_validation import _credit_default_day, snapshot

pytestmark = pytest.mark.integration

ROWS = 20000


def outcome(monkeypatch, cfg, home, day, engine):
    """Validate one partition on one engine (no reuse, no quarantine carried between them)."""
    monkeypatch.setenv("MLOPS_VALIDATION_IN_MEMORY_ROWS", "0" if engine == "duckdb" else "1000000000")
    result = validate_partition(cfg, day, **kwargs(home), reuse=False)
    q = home.quarantine_dir / cfg.name / f"date={day.isoformat()}" / "quarantine.json"
    if q.exists():
        q.unlink()
    failures = sorted(
        (f.expectation, f.column or "", f.unexpected_count, f.element_count, _comparable(f.observed_value), f.error)
        for f in result.failed
    )
    return result, failures


def _comparable(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    return value


def both(monkeypatch, cfg, home, day):
    in_memory, expected = outcome(monkeypatch, cfg, home, day, "pandas")
    out_of_core, got = outcome(monkeypatch, cfg, home, day, "duckdb")
    assert (out_of_core.success, got) == (in_memory.success, expected)
    assert out_of_core.evaluated == in_memory.evaluated
    ran = (in_memory.engine, out_of_core.engine)
    assert ran == (("pandas", "duckdb") if in_memory.result_id[:6] not in ("files-", "quaran") else (None, None))
    return out_of_core


@pytest.mark.parametrize("defect", [None, *DEFECTS])
def test_out_of_core_gives_the_same_failures_and_counts_as_pandas(card_fraud, home, monkeypatch, defect):
    day = DAY0 + dt.timedelta(days=3)
    write_day(home.lake, day, ROWS, defect=defect)
    result = both(monkeypatch, card_fraud, home, day)
    assert result.success == (defect is None)


def test_a_duplicate_id_across_two_files_fails_unique_on_both_engines(card_fraud, home, monkeypatch):
    day = DAY0 + dt.timedelta(days=4)
    part = write_day(home.lake, day, ROWS, files=2, row_group_rows=3000)
    first, second = sorted(part.glob("*.parquet"))
    table = pq.read_table(second)
    ids = table.column("transaction_id").to_pylist()
    ids[-1] = pq.read_table(first).column("transaction_id")[0].as_py()  # one id, in both files
    i = table.schema.get_field_index("transaction_id")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(ids, table.schema.field(i).type)), second)
    before = snapshot(part)
    result = both(monkeypatch, card_fraud, home, day)
    assert snapshot(part) == before  # read only: no byte, time stamp or file of the partition changed
    assert [(f.expectation, f.unexpected_count) for f in result.failed] == [("expect_column_values_to_be_unique", 2)]
    # Out of core, the type expectations (suite card_fraud.types) have a page of their own, of
    # the same run, beside the rows' page.
    suite = home.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations" / "card_fraud"
    rows_page = max(suite.glob("card_fraud:*/*/lake_out_of_core-card_fraud.html"))
    types_page = max((suite / "types").glob("card_fraud:*/*/*.html"))
    assert rows_page.parent.relative_to(suite) == types_page.parent.relative_to(suite / "types")


def probe(engine, lake, day, env):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.probe_validation", engine, str(lake), day.isoformat()],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_multi_million_row_partition_validates_in_bounded_memory(home):
    """Over MLOPS_VALIDATION_IN_MEMORY_ROWS (1M) a partition goes out of core on its own: its
    process peaks under 1 GiB, and under half of what GX's pandas engine takes for it."""
    day, rows = DAY0 + dt.timedelta(days=5), 2_000_000
    write_day(home.lake, day, rows, files=2)
    env = {**os.environ, "MLOPS_HOME": str(home.home)}
    out_of_core = probe("gx", home.lake, day, env)
    in_memory = probe("gx", home.lake, day, {**env, "MLOPS_VALIDATION_IN_MEMORY_ROWS": str(rows)})
    assert [(r["engine"], r["success"]) for r in (out_of_core, in_memory)] == [("duckdb", True), ("pandas", True)]
    assert out_of_core["peak_mib"] < min(1024, 0.5 * in_memory["peak_mib"]), (out_of_core, in_memory)


def test_the_memory_limit_reaches_the_connections_gx_opens(monkeypatch):
    import sqlalchemy as sa

    from include.mlops.validation.duckdb_engine import DRIVER, duckdb_config

    monkeypatch.delenv("MLOPS_VALIDATION_MEMORY_MIB", raising=False)
    assert duckdb_config()["memory_limit"] == "512MiB"
    monkeypatch.setenv("MLOPS_VALIDATION_MEMORY_MIB", "256")
    engine = sa.create_engine(f"{DRIVER}:///:memory:", connect_args={"config": duckdb_config()})
    with engine.connect() as con:
        assert con.exec_driver_sql("SELECT current_setting('memory_limit')").scalar() == "256.0 MiB"
    monkeypatch.setenv("MLOPS_VALIDATION_MEMORY_MIB", "lots")
    with pytest.raises(ValueError, match="MLOPS_VALIDATION_MEMORY_MIB must be a non-negative number, got 'lots'"):
        duckdb_config()


@pytest.mark.parametrize(
    "text",
    ["REF 4539.5887.6543.2105", "REFUNDCARD4539588765432105X", "tok_4539588765432105", "4539 5887 6543 2106",
     "12345678901234567890123", "call 555-0100", None, ""],
)  # fmt: skip
@pytest.mark.parametrize("letters_may_touch", [True, False])
def test_the_sql_card_number_check_agrees_with_the_pandas_rule(text, letters_may_touch):
    import sqlalchemy as sa

    from include.mlops.common.pii import contains_card_number
    from include.mlops.validation.duckdb_engine import DRIVER, card_number_condition

    engine = sa.create_engine(f"{DRIVER}:///:memory:")
    column = sa.literal(text, sa.String)
    with engine.connect() as con:
        no_card = con.execute(sa.select(card_number_condition(column, letters_may_touch))).scalar()
    assert no_card is (not contains_card_number(text, letters_may_touch))


@pytest.mark.parametrize(
    "labels", [["No"] * 570 + ["Yes"] * 30, ["No"] * 567 + ["Yes"] * 28 + ["yes"] * 5 + [None] * 2]
)
def test_the_second_dataset_and_its_label_rule_agree_on_both_engines(home, monkeypatch, labels):
    from include.mlops.common.dataset import load_dataset_config

    cfg = load_dataset_config(home.dataset_config_path("credit_default"))
    _credit_default_day(home.lake, DAY0, labels)
    result = both(monkeypatch, cfg, home, DAY0)
    if result.success:
        assert labels.count("Yes") == 30
    else:
        label = next(f for f in result.failed if f.expectation == "label_maps_to_positive_or_negative")
        assert "'yes' (5 rows)" in label.error, label.error


@pytest.mark.parametrize("regex", ["[0-9a-f]{24}", "^tok_[0-9a-f]{24}$", "f{30}"])
def test_a_regex_means_the_same_on_both_engines(home, regex):
    """GX writes PostgreSQL's `~` (found anywhere); DuckDB's own `~` must match the whole value."""
    import pandas as pd

    from include.mlops.validation.suite import run_suite

    part = write_day(home.lake, DAY0, 2000)
    files = sorted(part.glob("*.parquet"))
    suite = {
        "name": "regex_only",
        "expectations": [{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "card_token", "regex": regex}}],
    }  # fmt: skip
    in_memory = run_suite(pd.read_parquet(files[0]), suite, home.gx_root, "in-memory")
    out_of_core = run_suite(files, suite, home.gx_root, "out-of-core")
    assert in_memory[0] == out_of_core[0] == (regex != "f{30}")
    assert [f.unexpected_count for f in in_memory[3]] == [f.unexpected_count for f in out_of_core[3]]


@pytest.mark.parametrize("kind", ["decimal", "binary"])
def test_a_column_pandas_holds_as_objects_fails_its_type_on_both_engines(card_fraud, home, monkeypatch, kind):
    """Decimal or binary amounts are `object` columns: GX checks their values, so the out-of-core
    type check runs on the partition's first rows, not on an empty frame (which passed)."""
    import decimal

    day = DAY0 + dt.timedelta(days=6)
    part = write_day(home.lake, day, ROWS)
    (path,) = part.glob("*.parquet")
    table = pq.read_table(path)
    i = table.schema.get_field_index("amount")
    amounts = table.column("amount").to_pylist()
    if kind == "decimal":
        column = pa.array([decimal.Decimal(f"{a:.2f}") for a in amounts], pa.decimal128(12, 2))
    else:
        column = pa.array([f"{a:.2f}".encode() for a in amounts], pa.binary())
    pq.write_table(table.set_column(i, "amount", column).replace_schema_metadata(None), path)
    # Both fail on the type; out of core the count is of the first rows checked, not of the day.
    for engine in ("pandas", "duckdb"):
        result, failures = outcome(monkeypatch, card_fraud, home, day, engine)
        assert not result.success
        (typed,) = [f for f in failures if f[:2] == ("expect_column_values_to_be_in_type_list", "amount")]
        assert typed[2] == typed[3] == (ROWS if engine == "pandas" else 1000)


def test_each_out_of_core_run_spills_in_its_own_directory_and_leaves_nothing_open(card_fraud, home, monkeypatch):
    """Every connection GX opens gets the memory limit and this run's spill directory; after the
    run the directory is gone and no DuckDB database is left open (one per partition otherwise)."""
    import gc

    import duckdb

    from include.mlops.validation.duckdb_engine import ValidationDuckDBDialect

    seen = []
    connect = ValidationDuckDBDialect.connect

    def recording(self, *cargs, **cparams):
        seen.append(dict(cparams.get("config", {})))
        return connect(self, *cargs, **cparams)

    monkeypatch.setattr(ValidationDuckDBDialect, "connect", recording)
    monkeypatch.setenv("MLOPS_VALIDATION_MEMORY_MIB", "300")
    scratch = home.gx_root / "uncommitted" / "duckdb"
    (scratch / "run-killed").mkdir(parents=True)  # what a killed run left
    for offset in (7, 8):
        day = DAY0 + dt.timedelta(days=offset)
        write_day(home.lake, day, ROWS)
        outcome(monkeypatch, card_fraud, home, day, "duckdb")
    assert seen and {c["memory_limit"] for c in seen} == {"300MiB"}
    spills = {c["temp_directory"] for c in seen}
    assert len(spills) == 2 and all(s.startswith(str(scratch / "run-")) for s in spills)
    assert list(scratch.iterdir()) == []
    gc.collect()
    live = [o for o in gc.get_objects() if isinstance(o, duckdb.DuckDBPyConnection)]
    for con in live:
        with pytest.raises(duckdb.ConnectionException):
            con.execute("SELECT 1")


def test_a_label_column_of_ids_is_refused_without_holding_its_values(home, monkeypatch):
    from include.mlops.common.dataset import load_dataset_config
    from include.mlops.validation.out_of_core import LABEL_VALUES_COUNTED, label_problem_out_of_core

    cfg = load_dataset_config(home.dataset_config_path("credit_default"))
    _credit_default_day(home.lake, DAY0, [f"id{i}" for i in range(LABEL_VALUES_COUNTED + 50)])
    files = cfg.partition_files(home.lake, DAY0)
    message = label_problem_out_of_core(cfg, files)
    in_memory = cfg.label_problem(pq.read_table(files[0]).to_pandas())
    assert message.endswith(f"and {LABEL_VALUES_COUNTED + 40} more values")
    assert message.split(": ")[:2] == in_memory.split(": ")[:2]
    assert in_memory.endswith(f"and {LABEL_VALUES_COUNTED + 40} more values")


@pytest.mark.parametrize("stored_as", ["timestamp without time zone", "text"])
def test_an_event_time_without_a_time_zone_fails_on_both_engines(card_fraud, home, monkeypatch, stored_as):
    """The suite compares event_time with UTC bounds: pandas refuses a naive or text column
    there; out of core that check runs on the first rows in pandas too (DuckDB would cast)."""
    day = DAY0 + dt.timedelta(days=9)
    part = write_day(home.lake, day, ROWS)
    (path,) = part.glob("*.parquet")
    table = pq.read_table(path)
    i = table.schema.get_field_index("event_time")
    times = table.column("event_time").cast(pa.timestamp("us"))
    column = times if stored_as != "text" else pa.array([t.isoformat() for t in times.to_pylist()])
    pq.write_table(table.set_column(i, "event_time", column).replace_schema_metadata(None), path)
    result = both(monkeypatch, card_fraud, home, day)
    assert ("expect_column_values_to_be_between", "event_time") in {(f.expectation, f.column) for f in result.failed}
