"""A starter dataset from a sample partition: its config, its expectation suite and its DAG file.

``python -m devstack.cli scaffold-dataset NAME --sample PATH --label COLUMN`` reads one sample
partition (a parquet or CSV file, or a folder of them) and writes, for the author to review:

- ``datasets/NAME.yaml``: the id column, the label and its two values, numeric features (int and
  float columns), categorical features with the vocabulary seen (string and boolean columns with
  at most ``--max-categories`` values), the holdout, and the names (DAG, registered model);
- ``expectations/NAME.json``: a Great Expectations suite that the sample passes: the exact column
  set, each column's type, no nulls where the sample has none (else ``mostly`` a little below the
  rate seen), observed ranges widened by ``--margin``, observed vocabularies, the label's two
  values, a unique id, no card numbers in text columns, and a row-count floor;
- ``dags/NAME_pipeline.py``: the five-line DAG file (``include.mlops.airflow.dag_factory``).

Nothing is overwritten unless ``--force``; an error is one line. Text columns with more distinct
values than ``--max-categories`` are left out of the features (named in the config's comments).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from include.mlops.common.dataset import DatasetConfigError, load_dataset_config

INT_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64"]
FLOAT_TYPES = ["float32", "float64", "Float32", "Float64"]


class ScaffoldError(ValueError):
    """The sample or the arguments cannot make a dataset; the message says why, in one line."""


def read_sample(path: Path):
    import pandas as pd

    files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".csv")) if path.is_dir() else [path]
    if not files or not all(p.exists() for p in files):
        raise ScaffoldError(f"--sample {path}: no parquet or CSV file there")
    try:
        frames = [pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p) for p in files]
    except Exception as exc:  # a corrupt or foreign file: name it, in one line
        raise ScaffoldError(f"--sample {path}: cannot be read as parquet or CSV: {str(exc).splitlines()[0]}") from None
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise ScaffoldError(f"--sample {path}: no rows")
    return frame


def column_kind(series) -> str:
    """``int``, ``float``, ``bool``, ``str`` or ``other`` (timestamps and the like, left for review)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        return "str" if series.dropna().map(lambda v: isinstance(v, str)).all() else "other"
    return "other"


def label_values(frame, label: str, positive: str | None) -> tuple[Any, Any]:
    values = frame[label].dropna().unique().tolist()
    if len(values) != 2:
        shown = ", ".join(repr(v) for v in values[:5])
        raise ScaffoldError(
            f"--label {label}: a binary label has two values; the sample has {len(values)} distinct ones ({shown})"
        )
    values = [v.item() if hasattr(v, "item") else v for v in values]
    if positive is not None:
        match = [v for v in values if str(v) == positive]
        if not match:
            raise ScaffoldError(f"--positive {positive}: not a value of {label} ({values[0]!r}, {values[1]!r})")
        pos = match[0]
    elif sorted(values, key=str) in ([0, 1], [False, True]):
        pos = max(values)
    else:  # the rarer value is the class to find (fraud, default, churn): review it
        counts = frame[label].value_counts()
        pos = counts.idxmin()
        pos = pos.item() if hasattr(pos, "item") else pos
    neg = next(v for v in values if v != pos)
    return pos, neg


def pick_id(frame, wanted: str | None) -> str:
    if wanted:
        if wanted not in frame.columns:
            raise ScaffoldError(f"--id {wanted}: no such column (columns: {', '.join(map(str, frame.columns))})")
        return wanted
    unique = [c for c in frame.columns if frame[c].notna().all() and frame[c].is_unique]
    named = [c for c in unique if re.search(r"(^|_)id$", str(c).lower())]
    if len(named) == 1:
        return named[0]
    raise ScaffoldError("no single unique *_id column in the sample: name the row id with --id COLUMN")


def widened(low: float, high: float, margin: float, kind: str) -> tuple[float, float]:
    """The observed range widened by `margin` of its width, never below 0 when nothing was below 0."""
    pad = (high - low) * margin or abs(high) * margin
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    if kind == "int":
        return math.floor(lo), math.ceil(hi)
    return round(lo, 6), round(hi, 6)


def expectation(kind: str, notes: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "notes": notes, "severity": "critical"}


def build(frame, name: str, label: str, id_column: str, positive, negative, max_categories: int, margin: float):
    from include.mlops.common.pii import contains_card_number

    numeric, categorical, left_out = {}, {}, []
    suite = [
        expectation(
            "expect_table_row_count_to_be_between",
            f"A day has at least half the sample's {len(frame)} rows (review: your smallest normal day).",
            min_value=max(1, len(frame) // 2),
            max_value=100_000_000,
        ),
        expectation(
            "expect_table_columns_to_match_set",
            "Schema: exactly the sample's columns.",
            column_set=[str(c) for c in frame.columns],
            exact_match=True,
        ),
    ]
    for column in frame.columns:
        series, col = frame[column], str(column)
        kind = column_kind(series)
        if kind == "str":
            suite.append(
                expectation("expect_column_values_to_be_of_type", f"{col} holds strings.", column=col, type_="str")
            )
        elif kind in ("int", "float"):
            types = INT_TYPES if kind == "int" else FLOAT_TYPES
            suite.append(
                expectation(
                    "expect_column_values_to_be_in_type_list",
                    f"{col} is an {kind} column.",
                    column=col,
                    type_list=types,
                )
            )
        nulls = float(series.isna().mean())
        if nulls == 0:
            suite.append(expectation("expect_column_values_to_not_be_null", f"No missing {col}.", column=col))
        else:
            mostly = max(0.0, round(1 - nulls - 0.05, 3))
            note = f"{col} was missing in {nulls:.1%} of the sample; fails if over {1 - mostly:.0%}."
            suite.append(expectation("expect_column_values_to_not_be_null", note, column=col, mostly=mostly))
        if col == id_column:
            suite.append(expectation("expect_column_values_to_be_unique", "One row per id.", column=col))
        elif col == label:
            suite.append(
                expectation(
                    "expect_column_values_to_be_in_set",
                    "Binary label: its two values only.",
                    column=col,
                    value_set=[negative, positive],
                )
            )
        elif kind == "bool":
            suite.append(
                expectation("expect_column_values_to_be_in_set", f"{col}: a flag.", column=col, value_set=[False, True])
            )
            numeric[col] = {}
        elif kind in ("int", "float"):
            lo, hi = widened(float(series.min()), float(series.max()), margin, kind)
            note = f"{col} seen in [{series.min()}, {series.max()}] in the sample; widened by {margin:.0%} (review)."
            suite.append(
                expectation("expect_column_values_to_be_between", note, column=col, min_value=lo, max_value=hi)
            )
            numeric[col] = {}
        elif kind == "str" and series.nunique() <= max_categories:
            vocabulary = sorted({v.item() if hasattr(v, "item") else v for v in series.dropna().unique()}, key=str)
            categorical[col] = vocabulary
            suite.append(
                expectation(
                    "expect_column_values_to_be_in_set",
                    f"{col}: the values seen in the sample.",
                    column=col,
                    value_set=vocabulary,
                )
            )
        else:
            left_out.append(col)
        if kind == "str":  # identifiers mix letters and digits by design: there a card number stands alone
            touch = bool(series.dropna().str.contains(r"\s").any())  # free text; else an identifier or a token
            if series.dropna().map(lambda v, t=touch: contains_card_number(v, letters_may_touch=t)).any():
                raise ScaffoldError(
                    f"column {col} of the sample holds card numbers: mask them before they reach the lake"
                )
            suite.append(expectation("expect_column_values_to_contain_no_card_numbers", f"PII: no card number in {col}.",
                                     column=col, letters_may_touch=touch))  # fmt: skip
    config = {
        "name": name,
        "description": f"{name}: review this description (shown on the registered model).",
        "location": f"{name}/date={{date}}",
        "file_glob": "*.parquet",
        "id_column": id_column,
        "label": {"column": label, "positive": positive, "negative": negative},
        "expectation_suite": name,
        "registered_model": name.replace("_", "-"),
        "dag_id": f"{name}_pipeline",
        "numeric_features": numeric,
        "categorical_features": categorical,
        "holdout": {"fraction": 0.2, "salt": f"{name}-holdout-v1"},
        "slices": [],
    }
    return (
        config,
        {
            "name": name,
            "notes": f"Data contract for datasets/{name}.yaml, scaffolded from a sample: review.",
            "expectations": suite,
        },
        left_out,
    )


DAG_FILE = '''"""{name}, daily: datasets/{name}.yaml and its suite (include/mlops/airflow/dag_factory.py)."""

from include.mlops.airflow.dag_factory import pipeline_dag

pipeline_dag("{name}", dag_id="{name}_pipeline")
'''


def scaffold(root: Path, name: str, sample: Path, label: str, *, id_column=None, positive=None,
             max_categories: int = 50, margin: float = 0.1, force: bool = False) -> list[Path]:  # fmt: skip
    """Write the three files; returns their paths. Refuses (ScaffoldError) before writing anything."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ScaffoldError(f"dataset name {name!r}: lower-case letters, digits and '_', starting with a letter")
    targets = [
        root / "datasets" / f"{name}.yaml",
        root / "expectations" / f"{name}.json",
        root / "dags" / f"{name}_pipeline.py",
    ]
    existing = [str(p.relative_to(root)) for p in targets if p.exists()]
    if existing and not force:
        raise ScaffoldError(f"{', '.join(existing)} already there: pick another name, or --force to replace")
    frame = read_sample(sample)
    if label not in frame.columns:
        raise ScaffoldError(f"--label {label}: no such column (columns: {', '.join(map(str, frame.columns))})")
    id_column = pick_id(frame, id_column)
    positive, negative = label_values(frame, label, positive)
    config, suite, left_out = build(frame, name, label, id_column, positive, negative, max_categories, margin)
    header = f'# Scaffolded from {sample.name}: review every key (README, "Adding a dataset").\n'
    if left_out:
        header += f"# Not features (text with over {max_categories} values, or not a number): {', '.join(left_out)}\n"
    texts = [
        header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        json.dumps(suite, indent=2) + "\n",
        DAG_FILE.format(name=name),
    ]
    for path, text in zip(targets, texts, strict=True):  # each file whole, or not at all
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    try:
        load_dataset_config(targets[0])
    except DatasetConfigError as exc:  # a bug here, not the user's: say so plainly
        raise ScaffoldError(f"the scaffolded config does not load: {exc}") from None
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.cli scaffold-dataset", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "name", help="the dataset's name: datasets/NAME.yaml, expectations/NAME.json, dags/NAME_pipeline.py"
    )
    parser.add_argument(
        "--sample", type=Path, required=True, help="a sample partition: a parquet or CSV file, or a folder"
    )
    parser.add_argument("--label", required=True, help="the label column (two values)")
    parser.add_argument(
        "--positive", help="the label's value for the class the model scores (default: 1/True, else the rarer value)"
    )
    parser.add_argument("--id", dest="id_column", help="the row id column (default: the one unique *_id column)")
    parser.add_argument(
        "--max-categories", type=int, default=50, help="text columns with at most this many values are categorical"
    )
    parser.add_argument(
        "--margin", type=float, default=0.1, help="observed ranges are widened by this share of their width"
    )
    parser.add_argument("--force", action="store_true", help="replace files that are already there")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    try:
        written = scaffold(ns.root, ns.name, ns.sample, ns.label, id_column=ns.id_column, positive=ns.positive,
                           max_categories=ns.max_categories, margin=ns.margin, force=ns.force)  # fmt: skip
    except ScaffoldError as exc:
        print(f"scaffold-dataset: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(ns.root)}")
    print("review them (ranges, vocabularies, the label's positive value, slices), then load partitions under "
          f"the lake at {ns.name}/date=YYYY-MM-DD/ and trigger {ns.name}_pipeline")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
