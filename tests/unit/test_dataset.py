import datetime as dt

import pytest

from include.mlops.common.dataset import (
    DatasetConfigError,
    LabelError,
    PartitionNotFoundError,
    load_dataset_config,
    parse_date,
    partitions_sha256,
    window,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

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


LABEL = "label: {column: is_fraud, positive: 1, negative: 0}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # wrong types; YAML booleans and numbers where strings are meant are refused, not str()-ed
        ("channel: [chip,", "channel: [No, Yes, chip,", 'categorical_features.channel[0]: must be a string, got a YAML boolean (quote it: "No")'),
        ("merchant_country: [US,", "merchant_country: [NO, US,", 'categorical_features.merchant_country[0]: must be a string, got a YAML boolean (quote it: "NO")'),
        ("channel: [chip,", "channel: [chip, 007,", 'categorical_features.channel[1]: must be a string, got a YAML number (quote it: "007")'),
        ("id_column: transaction_id", "id_column: 12", 'id_column: must be a string, got a YAML number (quote it: "12")'),
        ("id_column: transaction_id", "id_column:", "id_column: must be a string, got nothing"),
        ("name: card_fraud", "name: [card_fraud]", "name: must be a string, got a list"),
        ("fraction: 0.2", "fraction: '0.2'", "holdout.fraction: must be a number, got the string '0.2'"),
        ("fraction: 0.2", "fraction: yes", "holdout.fraction: must be a number, got a YAML boolean"),
        ("  hour: {}", "  hour: 5", "numeric_features.hour: must be a mapping (key: value), got a YAML number"),
        ("slices: [channel, merchant_category]", "slices: channel", "slices: must be a list ([a, b, ...]), got the string 'channel'"),
        ("categorical_features:\n", "categorical_features:\n  on: [a]\n", "categorical_features: key 'on': must be a string, got a YAML boolean (quote it: \"on\")"),
        # unknown keys, top level and nested
        ("file_glob:", "file_glb:", "file_glb: unknown key (did you mean 'file_glob'?); allowed here: name, description,"),
        ("fraction: 0.2", "fraction: 0.2\n  seed: 3", "holdout.seed: unknown key; allowed here: fraction, salt"),
        ("amount: {transform: log1p}", "amount: {transfrom: log1p}", "numeric_features.amount.transfrom: unknown key (did you mean 'transform'?)"),
        (LABEL, "label_column: is_fraud", "label_column: replaced by the label mapping: write label: {column: is_fraud}"),
        # missing required keys
        ("id_column: transaction_id\n", "", "id_column: required key is missing"),
        (LABEL, "label: {positive: 1, negative: 0}", "label.column: required key is missing"),
        ("fraction: 0.2", "", "holdout.fraction: required key is missing"),
        # a column with two roles
        (LABEL, "label: {column: transaction_id}", "label.column: column 'transaction_id' is listed twice (also as id_column)"),
        (LABEL, "label: {column: amount}", "numeric_features.amount: column 'amount' is listed twice (also as label.column)"),
        ("  hour: {}", "  hour: {}\n  channel: {}", "categorical_features.channel: column 'channel' is listed twice (also as numeric_features.channel)"),
        ("  hour: {}", "  hour: {}\n  amount: {}", "numeric_features.amount: key is written twice (lines 30 and 32)"),
        ("channel: [chip,", "channel: [chip, chip,", "categorical_features.channel: value 'chip' is listed twice"),
        # holdout fraction outside (0, 1)
        ("fraction: 0.2", "fraction: 1.5", "holdout.fraction: must be between 0 and 1 (both excluded), got 1.5"),
        ("fraction: 0.2", "fraction: 0", "holdout.fraction: must be between 0 and 1 (both excluded), got 0"),
        ("fraction: 0.2", "fraction: 1", "holdout.fraction: must be between 0 and 1 (both excluded), got 1"),
        # the label's values
        (LABEL, "label: {column: is_fraud, positive: Yes, negative: No}", 'label.positive: Yes reads as a YAML boolean; write true for a boolean label column, or quote it ("Yes")'),
        (LABEL, 'label: {column: is_fraud, positive: "Yes"}', "label: give both positive and negative, or neither"),
        (LABEL, "label: {column: is_fraud, positive: 0.5, negative: 0}", "label.positive: must be a string, an integer or a boolean, got a YAML number"),
        (LABEL, 'label: {column: is_fraud, positive: "a", negative: "a"}', "label: positive and negative are the same value ('a')"),
        # and the rest
        ("amount: {transform: log1p}", "amount: {transform: sqrt}", "numeric_features.amount.transform: unknown transform 'sqrt' (known: log1p)"),
        ("location: transactions/date={date}", "location: transactions", "location: must contain '{date}'"),
        ("slices: [channel, merchant_category]", "slices: [amount]", "slices[0]: slice 'amount' must be a categorical feature"),
        ("categorical_features:\n", "categorical_features:\n  numeric: [a]\n", "categorical_features.numeric: the name 'numeric' is reserved"),
        ("channel: [chip, contactless, swipe, ecommerce, atm]", "channel: []", "categorical_features.channel: needs at least one value"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_file_and_key(tmp_path, old, new, message):
    assert old in CONFIG
    path = write(tmp_path, CONFIG.replace(old, new, 1))
    with pytest.raises(DatasetConfigError) as err:
        load_dataset_config(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {message}"), text


def test_config_errors_report_the_first_problem_and_count_the_rest(tmp_path):
    text = CONFIG.replace("id_column: transaction_id", "id_column: 1").replace("fraction: 0.2", "fraction: 2")
    with pytest.raises(DatasetConfigError, match=r"^.*: id_column: must be a string, .* \(and 1 more problem\)$"):
        load_dataset_config(write(tmp_path, text))


def test_config_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(DatasetConfigError, match="not found"):
        load_dataset_config(tmp_path / "nope.yaml")
    for text, what in [
        ("name: [unclosed", "not valid YAML (line 1, column 16)"),
        ("", "must be a mapping of keys"),
        ("- a\n", "must be a mapping of keys (see datasets/card_fraud.yaml), got a list"),
    ]:
        path = write(tmp_path, text)
        with pytest.raises(DatasetConfigError) as err:
            load_dataset_config(path)
        assert str(err.value).startswith(f"{path}: ") and what in str(err.value) and "\n" not in str(err.value)


def test_label_defaults_to_one_for_positive_and_model_description_falls_back(tmp_path, card_fraud):
    assert (card_fraud.label_positive, card_fraud.label_negative) == (1, 0)
    assert card_fraud.registered_model_description.startswith("Probability that a card transaction is fraudulent")
    text = CONFIG.replace(LABEL, "label: {column: is_fraud}").replace("model_description:", "# model_description:")
    cfg = load_dataset_config(write(tmp_path, text))
    assert (cfg.label_positive, cfg.label_negative) == (1, 0)
    assert cfg.registered_model_description == cfg.description.strip() != ""


def _string_label_config(tmp_path):
    text = CONFIG.replace(LABEL, 'label: {column: default, positive: "Yes", negative: "No"}')
    return load_dataset_config(write(tmp_path, text))


@pytest.mark.parametrize("dtype", ["str", "object", "category"])
def test_string_labels_map_to_one_and_zero(tmp_path, dtype):
    import pandas as pd

    cfg = _string_label_config(tmp_path)
    frame = pd.DataFrame({"default": pd.Series(["Yes", "No", "No", "Yes"], dtype=dtype)})
    assert cfg.label_problem(frame) is None
    labels = cfg.binary_labels(frame)
    assert labels.tolist() == [1, 0, 0, 1] and labels.dtype.kind == "i"


def test_boolean_and_numeric_labels_map(tmp_path, card_fraud):
    import pandas as pd

    text = CONFIG.replace(LABEL, "label: {column: is_fraud, positive: true, negative: false}")
    cfg = load_dataset_config(write(tmp_path, text))
    assert cfg.binary_labels(pd.DataFrame({"is_fraud": [True, False, True]})).tolist() == [1, 0, 1]
    assert card_fraud.binary_labels(pd.DataFrame({"is_fraud": [0, 1, 1]})).tolist() == [0, 1, 1]
    assert card_fraud.binary_labels(pd.Series([0.0, 1.0], dtype="float32")).tolist() == [0, 1]


def test_unmapped_label_values_are_named_with_counts(tmp_path, card_fraud):
    import pandas as pd

    cfg = _string_label_config(tmp_path)
    frame = pd.DataFrame({"default": ["Yes", "No", "yes", "yes", None, "No"]})
    problem = cfg.label_problem(frame)
    assert problem == (
        "dataset 'card_fraud': label column 'default' has values that are neither positive 'Yes' nor negative 'No': "
        "'yes' (2 rows), null (1 row)"
    )
    with pytest.raises(LabelError) as err:
        cfg.binary_labels(frame)
    assert str(err.value) == problem and isinstance(err.value, ValueError)
    # At most ten values are listed, most frequent first.
    many = card_fraud.label_problem(pd.DataFrame({"is_fraud": [0, 1, *range(2, 40), 7, 7]}))
    assert "7 (3 rows), 2 (1 row)" in many and many.endswith(", and 28 more values") and "\n" not in many
    # The same digits with another type: the message says which type the config should use.
    strings = card_fraud.label_problem(pd.DataFrame({"is_fraud": ["0", "1"]}))
    assert "'0' (1 row), '1' (1 row) (the config's 0 is a number, the column's '0' is a string" in strings
    assert card_fraud.label_problem(pd.DataFrame({"label": [1]})) == (
        "dataset 'card_fraud': label column 'is_fraud' is missing (columns: label)"
    )


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

    from include.mlops.validation.suite import FailedExpectation, _jsonable

    mean = FailedExpectation("expect_column_mean_to_be_between", "is_fraud", None, None, _jsonable(np.float64(0.11574)))
    assert mean.describe() == "expect_column_mean_to_be_between[is_fraud]: observed 0.1157"
    assert _jsonable(np.int64(500)) == 500 and type(_jsonable(np.int64(500))) is int
    blind = FailedExpectation("expect_column_values_to_be_between", "event_time", None, None, None)
    assert blind.describe().endswith("could not be evaluated (are the column's values of the expected type?)")


def test_the_readme_example_of_a_config_error_is_what_the_loader_says(tmp_path):
    import re

    from include.mlops.common.dataset import DatasetConfigError, load_dataset_config
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    example = re.search(
        r"`(datasets/credit_default\.yaml: categorical_features[^`]*)`\s+for `student: \[No, Yes\]`", readme
    )
    assert example, "the README's config-error example is gone"
    config = (ROOT / "datasets" / "credit_default.yaml").read_text()
    assert 'student: ["No", "Yes"]' in config
    path = tmp_path / "datasets" / "credit_default.yaml"
    path.parent.mkdir()
    path.write_text(config.replace('student: ["No", "Yes"]', "student: [No, Yes]"))
    with pytest.raises(DatasetConfigError) as err:
        load_dataset_config(path)
    assert str(err.value) == example.group(1).replace("datasets/credit_default.yaml", str(path), 1)


def test_a_config_names_its_dag_and_experiment_with_defaults_from_its_name(tmp_path, card_fraud):
    assert (card_fraud.dag_id, card_fraud.experiment) == ("fraud_model_pipeline", "fraud_model_pipeline")
    bare = load_dataset_config(write(tmp_path, CONFIG.replace("dag_id: fraud_model_pipeline\n", "")))
    assert (bare.dag_id, bare.experiment) == ("card_fraud_pipeline", "card_fraud_pipeline")
    named = CONFIG.replace("dag_id: fraud_model_pipeline\n", "dag_id: cards\nexperiment: card models\n")
    assert (load_dataset_config(write(tmp_path, named)).experiment) == "card models"
    with pytest.raises(DatasetConfigError, match=r"d.yaml: dag_id: .*an Airflow DAG id\), got 'cards daily'$"):
        load_dataset_config(write(tmp_path, CONFIG.replace("dag_id: fraud_model_pipeline", "dag_id: cards daily")))
