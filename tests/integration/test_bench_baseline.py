"""The benchmark's pandas baseline checks what the GX suite checks (same verdicts)."""

import datetime as dt
import json

import pandas as pd
import pytest

from benchmarks.pandas_checks import run_checks
from benchmarks.run import report, summary, verdict
from devstack.datagen import write_day
from include.mlops.validation.suite import partition_parameters, validate_partition
from tests.conftest import DAY0

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "defect", [None, "nulls", "raw_card_numbers", "label_rate_shift", "future_timestamps", "other_day_timestamps"]
)
def test_pandas_baseline_agrees_with_gx(card_fraud, home, defect):
    day = DAY0 + dt.timedelta(days=5)
    part = write_day(home.lake, day, 20000, defect=defect)
    gx = validate_partition(
        card_fraud,
        day,
        lake=home.lake,
        expectations_dir=home.expectations_dir,
        gx_root=home.gx_root,
        validation_dir=home.validation_dir,
        quarantine_dir=home.quarantine_dir,
    )
    suite = json.loads((home.expectations_dir / "card_fraud.json").read_text())
    checks = run_checks(pd.read_parquet(part), suite, partition_parameters(day))
    # GX's count also has the dataset config's label rule, checked beside the suite.
    assert len(checks) + 1 == gx.evaluated
    assert {(c["type"], c["column"]) for c in checks if not c["success"]} == {
        (f.expectation, f.column) for f in gx.failed
    }


def test_report_states_targets():
    figures = {
        "orchestration_overhead_ratio": {**summary([1.1, 1.3, 1.2]), "value": 1.2},
        "quality_vs_optimal_ratio": {**summary([0.90, 0.92, 0.94]), "value": 0.92},
        "gbdt_pr_auc": summary([0.5]),
    }
    assert verdict("orchestration_overhead_ratio", figures["orchestration_overhead_ratio"]) == "< 1.25: met"
    assert verdict("quality_vs_optimal_ratio", figures["quality_vs_optimal_ratio"]) == ">= 0.95: MISSED"
    table = report({"meta": {"date": "d", "machine": "m", "commit": "c", "seconds": 1.0}, "figures": figures})
    assert "| `quality_vs_optimal_ratio` | 0.92 (0.9 – 0.94) | >= 0.95: MISSED |" in table
