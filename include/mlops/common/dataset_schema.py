"""The schema of a dataset config file (``datasets/<name>.yaml``), and its checks across keys.

``include.mlops.common.dataset.load_dataset_config`` validates a file against ``DatasetFile``
(pydantic, strict: a YAML boolean or number where a string is meant is refused) and turns every
mistake into one line naming the key path (``include.mlops.common.yaml_errors``). Standard library,
PyYAML and pydantic only: the trainer image has them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from include.mlops.common.yaml_errors import describe_error, find_scalar, yaml_kind

# The name of the model's numeric input (include/mlops/trainer/scoring.py): no categorical
# feature may take it.
RESERVED_FEATURE_NAMES = frozenset({"numeric"})


def _same_label_value(a: Any, b: Any) -> bool:
    """Two configured label values are the same: strings only equal strings (1 == True)."""
    return isinstance(a, str) == isinstance(b, str) and a == b


def _check_location(value: str) -> str:
    if "{date}" not in value:
        raise ValueError("must contain '{date}' (where the partition's YYYY-MM-DD goes)")
    return value


def _check_identifier(value: str) -> str:
    """An Airflow DAG id: letters, digits, dashes, dots and underscores (empty: the default)."""
    if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", value):
        raise ValueError(f"must be letters, digits, '_', '-' or '.' (an Airflow DAG id), got {value!r}")
    return value


def _check_vocabulary(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("needs at least one value")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"value {value!r} is listed twice")
        seen.add(value)
    return values


_Text = Annotated[str, Field(min_length=1)]
_Vocabulary = Annotated[list[_Text], AfterValidator(_check_vocabulary)]


class _Schema(BaseModel):
    # strict: a YAML boolean or number where a string is meant is refused, never turned into "True".
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _NumericSpec(_Schema):
    transform: Literal["log1p"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {} if data is None else data  # `hour:` means `hour: {}`


class _LabelSpec(_Schema):
    column: _Text
    # Both or neither: without them the label is 0/1 (positive 1).
    positive: Any = None
    negative: Any = None

    @field_validator("positive", "negative")
    @classmethod
    def _label_value(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | int):  # bool is an int
            raise ValueError(f"must be a string, an integer or a boolean, got {yaml_kind(value)}")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> _LabelSpec:
        if (self.positive is None) != (self.negative is None):
            raise ValueError("give both positive and negative, or neither (then positive is 1 and negative 0)")
        if self.positive is not None and _same_label_value(self.positive, self.negative):
            raise ValueError(f"positive and negative are the same value ({self.positive!r})")
        return self


class _HoldoutSpec(_Schema):
    fraction: float
    salt: str = ""

    @field_validator("fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"must be between 0 and 1 (both excluded), got {value!r}")
        return value


class DatasetFile(_Schema):
    """The keys of ``datasets/<name>.yaml`` (see datasets/card_fraud.yaml)."""

    name: _Text
    description: str = ""
    location: Annotated[_Text, AfterValidator(_check_location)]
    file_glob: _Text = "*.parquet"
    id_column: _Text
    label: _LabelSpec
    expectation_suite: _Text
    registered_model: _Text
    model_description: str = ""
    # Default: <name>_pipeline, and the experiment is named like the DAG.
    dag_id: Annotated[str, AfterValidator(_check_identifier)] = ""
    experiment: str = ""
    numeric_features: dict[_Text, _NumericSpec]
    categorical_features: dict[_Text, _Vocabulary]
    holdout: _HoldoutSpec
    slices: list[_Text] = []


def describe_dataset_error(error: dict[str, Any], raw: Any, root: yaml.Node | None) -> str:
    if error["type"] == "extra_forbidden" and tuple(error["loc"]) == ("label_column",):
        return (
            f"label_column: replaced by the label mapping: write label: {{column: {error.get('input')}}} "
            '(positive 1 and negative 0 unless given, e.g. positive: "Yes", negative: "No")'
        )
    return describe_error(error, raw, root, DatasetFile)


def label_booleans(spec: DatasetFile, root: yaml.Node) -> str | None:
    """A label value written Yes/No/On/Off: YAML reads a boolean, the author most likely meant a string."""
    for key in ("positive", "negative"):
        value = getattr(spec.label, key)
        if not isinstance(value, bool):
            continue
        node = find_scalar(root, ("label", key))
        spelled = node.value if isinstance(node, yaml.ScalarNode) else ""
        if spelled.lower() not in ("true", "false"):
            return (
                f"label.{key}: {spelled} reads as a YAML boolean; write {str(value).lower()} for a boolean label "
                f'column, or quote it ("{spelled}") for a string one'
            )
    return None


def consistency_problem(spec: DatasetFile) -> str | None:
    """Checks across keys: every column has one role, slices are categorical features."""
    roles: dict[str, str] = {}
    columns = [
        ("id_column", spec.id_column),
        ("label.column", spec.label.column),
        *((f"numeric_features.{name}", name) for name in spec.numeric_features),
        *((f"categorical_features.{name}", name) for name in spec.categorical_features),
    ]
    for where, column in columns:
        if column in roles:
            return f"{where}: column {column!r} is listed twice (also as {roles[column]}); a column has one role"
        roles[column] = where
    for name in spec.categorical_features:
        if name in RESERVED_FEATURE_NAMES:
            return f"categorical_features.{name}: the name {name!r} is reserved for the model's numeric input"
    seen: set[str] = set()
    for i, column in enumerate(spec.slices):
        if column not in spec.categorical_features:
            return (
                f"slices[{i}]: slice {column!r} must be a categorical feature "
                f"(categorical: {', '.join(spec.categorical_features)})"
            )
        if column in seen:
            return f"slices[{i}]: slice {column!r} is listed twice"
        seen.add(column)
    return None
