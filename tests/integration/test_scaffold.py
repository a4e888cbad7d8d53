"""The scaffold command: a starter config, suite and DAG file from a sample partition, which the
project's own loaders and validation accept, and which still catch a broken partition."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from devstack.datagen import write_day
from devstack.scaffold import main, scaffold
from include.mlops.common.dataset import load_dataset_config
from include.mlops.validation.suite import validate_partition
from tests.conftest import DAY0, ROOT, validation_kwargs

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path):
    """A copy of the project's dataset folders, so the scaffold writes beside the real ones."""
    for sub in ("datasets", "expectations", "dags"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    return tmp_path


def sample_day(home, day=DAY0, rows=3000, **kwargs):
    """A generated card-transactions partition, under the location the scaffold gives dataset "cards"."""
    (part,) = write_day(home.lake, day, rows, location="cards/date={date}", **kwargs).glob("*.parquet")
    return part


def test_a_scaffolded_card_dataset_validates_its_sample_and_the_next_day_and_stops_a_broken_one(home, repo, capsys):
    part = sample_day(home)
    assert main(["cards", "--sample", str(part), "--label", "is_fraud", "--root", str(repo)]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "wrote datasets/cards.yaml",
        "wrote expectations/cards.json",
        "wrote dags/cards_pipeline.py",
    ]
    cfg = load_dataset_config(repo / "datasets" / "cards.yaml")
    assert (cfg.id_column, cfg.label_column, cfg.label_positive, cfg.label_negative) == (
        "transaction_id",
        "is_fraud",
        1,
        0,
    )
    assert (cfg.dag_id, cfg.registered_model, cfg.experiment) == ("cards_pipeline", "cards", "cards_pipeline")
    assert {"amount", "hour", "velocity_1h"} <= {f.name for f in cfg.numeric_features}
    assert set(cfg.categorical_features["channel"]) == set(pd.read_parquet(part)["channel"].unique())
    # Free text and tokens (thousands of values) are left out, and the config says so.
    assert "merchant_descriptor" not in cfg.feature_columns and "card_token" not in cfg.feature_columns
    assert "# Not features" in (repo / "datasets" / "cards.yaml").read_text()
    dag_file = (repo / "dags" / "cards_pipeline.py").read_text()
    assert 'pipeline_dag("cards", dag_id="cards_pipeline")' in dag_file

    # The suite passes the sample's day and a new day, generated with another seed.
    kwargs = {**validation_kwargs(home), "expectations_dir": repo / "expectations"}
    sample_day(home, DAY0 + dt.timedelta(days=1), seed=5)
    for day in (DAY0, DAY0 + dt.timedelta(days=1)):
        result = validate_partition(cfg, day, **kwargs)
        assert result.success, [f.describe() for f in result.failed]

    # A day with a card number in free text and a label outside its two values fails, naming both.
    broken = DAY0 + dt.timedelta(days=2)
    frame = pd.read_parquet(part)
    frame.loc[0, "is_fraud"] = 2
    frame.loc[1, "merchant_descriptor"] = "REFUND 4539 1488 0343 6467"
    (home.lake / "cards" / f"date={broken.isoformat()}").mkdir(parents=True)
    frame.to_parquet(home.lake / "cards" / f"date={broken.isoformat()}" / "part-00000.parquet")
    result = validate_partition(cfg, broken, **kwargs)
    failed = {(f.expectation, f.column) for f in result.failed}
    assert ("expect_column_values_to_be_in_set", "is_fraud") in failed
    assert ("expect_column_values_to_contain_no_card_numbers", "merchant_descriptor") in failed


def test_a_string_label_takes_the_rarer_value_as_positive_unless_told(home, repo, tmp_path):
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(100)], "balance": range(100), "default": ["No"] * 90 + ["Yes"] * 10}
    )
    sample = tmp_path / "sample.csv"
    frame.to_csv(sample, index=False)
    scaffold(repo, "loans", sample, "default")
    cfg = load_dataset_config(repo / "datasets" / "loans.yaml")
    assert (cfg.label_positive, cfg.label_negative) == ("Yes", "No")
    scaffold(repo, "loans", sample, "default", positive="No", force=True)
    assert load_dataset_config(repo / "datasets" / "loans.yaml").label_positive == "No"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["Cards!", "--label", "is_fraud"], "scaffold-dataset: dataset name 'Cards!': lower-case letters"),
        (["credit_default", "--label", "is_fraud"], "scaffold-dataset: datasets/credit_default.yaml, expectations/credit_default.json, dags/credit_default_pipeline.py already there: pick another name, or --force to replace"),
        (["cards", "--label", "fraud"], "scaffold-dataset: --label fraud: no such column (columns: transaction_id,"),
        (["cards", "--label", "amount"], "scaffold-dataset: --label amount: a binary label has two values; the sample has "),
        (["cards", "--label", "is_fraud", "--positive", "yes"], "scaffold-dataset: --positive yes: not a value of is_fraud"),
        (["cards", "--label", "is_fraud", "--id", "nope"], "scaffold-dataset: --id nope: no such column"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(home, repo, capsys, args, line):
    part = sample_day(home)
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    assert main([args[0], "--sample", str(part), *args[1:], "--root", str(repo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before


def test_a_sample_that_holds_card_numbers_is_refused(home, repo, capsys):
    part = sample_day(home, defect="raw_card_numbers")
    assert main(["cards", "--sample", str(part), "--label", "is_fraud", "--root", str(repo)]) == 2
    assert "holds card numbers: mask them before they reach the lake" in capsys.readouterr().err
    assert not (repo / "datasets" / "cards.yaml").exists()
