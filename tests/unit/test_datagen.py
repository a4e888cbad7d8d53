import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from devstack.datagen import DEFECTS, generate_day, inject_defect, write_day
from tests.conftest import DAY0, ROOT

pytestmark = pytest.mark.unit

PAN = re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])")


@pytest.fixture(scope="module")
def day():
    return generate_day(DAY0, 20000, seed=7)


def test_deterministic_per_seed_and_day(day):
    again, _oracle = generate_day(DAY0, 20000, seed=7)
    pd.testing.assert_frame_equal(day[0], again)
    other, _ = generate_day(DAY0, 20000, seed=8)
    assert not other["amount"].equals(day[0]["amount"])


def test_schema_and_fraud_signal(day, card_fraud):
    features, oracle = day
    assert set(card_fraud.required_columns) <= set(features.columns)
    assert features["transaction_id"].is_unique
    assert 0.01 <= features["is_fraud"].mean() <= 0.03
    # Oracle is aligned row by row and carries real signal.
    assert (oracle["transaction_id"] == features["transaction_id"]).all()
    p = oracle["fraud_probability"].to_numpy()
    y = features["is_fraud"].to_numpy()
    assert p[y == 1].mean() > 5 * p[y == 0].mean()
    assert abs(p.mean() - y.mean()) < 0.005  # labels are drawn from these probabilities
    for col, vocab in card_fraud.categorical_features.items():
        assert set(features[col].unique()) <= set(vocab)


def test_no_raw_card_numbers(day):
    features, _ = day
    assert features["card_token"].str.fullmatch(r"tok_[0-9a-f]{24}").all()
    for col in features.select_dtypes(include=["string", "object"]).columns:
        assert not features[col].astype(str).str.contains(PAN).any(), col


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_breaks_what_it_names(day, defect):
    clean = day[0]
    bad = inject_defect(clean, defect, seed=1)
    assert bad is not clean
    if defect == "nulls":
        assert bad["amount"].isna().sum() > 0
    elif defect == "missing_column":
        assert "merchant_category" not in bad
    elif defect == "wrong_type":
        assert not pd.api.types.is_numeric_dtype(bad["amount"])
    elif defect == "out_of_range":
        assert (bad["amount"] < 0).any() and (bad["hour"] > 23).any()
    elif defect == "duplicate_ids":
        assert not bad["transaction_id"].is_unique
    elif defect == "raw_card_numbers":
        assert bad["merchant_descriptor"].str.contains(PAN).sum() > 0
    elif defect == "label_rate_shift":
        assert bad["is_fraud"].mean() > 0.08
    elif defect == "feature_drift":
        assert bad["amount"].median() > 3 * clean["amount"].median()
    elif defect == "unknown_category":
        assert (bad["merchant_category"] == "casino").sum() > 0
    elif defect == "label_not_binary":
        assert (bad["is_fraud"] == 2).sum() > 0
    elif defect == "malformed_card_token":
        assert (~bad["card_token"].str.fullmatch(r"tok_[0-9a-f]{24}")).sum() > 0
    elif defect == "too_few_rows":
        assert len(bad) == 500
    # The clean frame is never modified in place.
    assert clean["transaction_id"].is_unique and clean["amount"].notna().all()


def test_unknown_defect():
    with pytest.raises(ValueError, match="unknown defect 'bogus'"):
        inject_defect(pd.DataFrame({"a": [1]}), "bogus")


def test_write_day_is_whole_partition(tmp_path):
    part = write_day(tmp_path, DAY0, 500)
    assert [p.name for p in part.iterdir()] == ["part-00000.parquet"]
    oracle = tmp_path / "_oracle" / "transactions" / "date=2026-01-01" / "part-00000.parquet"
    assert oracle.exists()
    df = pd.read_parquet(part)
    assert len(df) == 500 and "fraud_probability" not in df
    # Rewriting replaces the partition, leaving no staging directories behind.
    write_day(tmp_path, DAY0, 300)
    assert len(pd.read_parquet(part)) == 300
    assert sorted(p.name for p in (tmp_path / "transactions").iterdir()) == ["date=2026-01-01"]
    assert np.isfinite(pd.read_parquet(oracle)["fraud_probability"]).all()


def test_a_day_in_parts_has_unique_ids_across_files_and_bounded_row_groups(tmp_path):
    import pyarrow.parquet as pq

    part = write_day(tmp_path, DAY0, 5000, files=3, row_group_rows=1000)
    files = sorted(part.glob("*.parquet"))
    assert [p.name for p in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    meta = [pq.ParquetFile(p).metadata for p in files]
    assert [m.num_rows for m in meta] == [1667, 1667, 1666]
    groups = [m.row_group(g).num_rows for m in meta for g in range(m.num_row_groups)]
    assert max(groups) == 1000 and sum(groups) == 5000
    df = pd.read_parquet(part)
    assert df["transaction_id"].is_unique and len(df) == 5000
    assert 0.005 <= df["is_fraud"].mean() <= 0.04
    assert list(pd.read_parquet(part / "part-00000.parquet").dtypes) == list(generate_day(DAY0, 10)[0].dtypes)
    oracle = pd.read_parquet(tmp_path / "_oracle" / "transactions" / "date=2026-01-01")
    assert (oracle["transaction_id"] == df["transaction_id"]).all()  # file by file, row by row
    # Deterministic: the same bytes again; no staging directories left behind.
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    write_day(tmp_path, DAY0, 5000, files=3, row_group_rows=1000)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(part.glob("*.parquet"))] == digests
    assert sorted(p.name for p in (tmp_path / "transactions").iterdir()) == ["date=2026-01-01"]


@pytest.mark.integration  # runs a program
def test_writing_a_day_in_parts_holds_one_row_group_not_the_day(tmp_path):
    """Peak memory of the writer process follows the row group, not the day (300k rows here)."""
    script = (
        "import resource, sys, datetime as dt\n"
        "from devstack.datagen import write_day\n"
        "write_day(sys.argv[1], dt.date(2026, 1, 1), int(sys.argv[2]), files=2, row_group_rows=int(sys.argv[3]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )

    def peak_mib(rows: int, group: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"{rows}-{group}"), str(rows), str(group)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        return int(out.stdout.split()[-1])

    small, large = peak_mib(30_000, 15_000), peak_mib(300_000, 15_000)
    print(f"peak RSS writing 30k rows: {small} MiB; 300k rows: {large} MiB (row groups of 15k)")
    assert large < small + 40  # ten times the rows, about the same memory
    assert len(pd.read_parquet(tmp_path / "300000-15000" / "transactions")) == 300_000


def test_defects_need_a_day_in_one_frame(tmp_path):
    with pytest.raises(ValueError, match="defects are injected into a day written as one frame"):
        write_day(tmp_path, DAY0, 5000, defect="nulls", files=2)
    assert not (tmp_path / "transactions").exists()
