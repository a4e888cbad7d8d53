"""Dataset descriptions: what a dataset's partitions look like and how a model reads them.

This module is shared by the Airflow control plane and the trainer image, so it only
imports the standard library, PyYAML and pydantic (both environments have them) at module
level; numpy and pandas are imported where partitions and labels are read.

A dataset config (``datasets/<name>.yaml``) is checked against a pydantic schema
(``include.mlops.common.dataset_schema.DatasetFile``): every mistake is refused with one line naming the file and the key path,
for example::

    datasets/x.yaml: categorical_features.default[0]: must be a string, got a YAML boolean (quote it: "No")

The label rule lives here too: ``DatasetConfig.binary_labels`` maps the label column to 0/1
(the config's ``label.positive`` / ``label.negative``) for training, evaluation and scoring,
and ``DatasetConfig.label_problem`` says, without raising, what a partition's labels break.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from include.mlops.common.dataset_schema import (
    DatasetFile,
    consistency_problem,
    describe_dataset_error,
    label_booleans,
)
from include.mlops.common.yaml_errors import duplicate_key, yaml_kind

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LabelValue = str | int | bool
_MAX_LISTED_VALUES = 10


class DatasetConfigError(ValueError):
    """A dataset config file is missing, unreadable or inconsistent (one line: file, key path, problem)."""


class PartitionNotFoundError(FileNotFoundError):
    """A partition the run needs has no data files."""


class LabelError(ValueError):
    """A label column holds values that are neither the config's positive nor its negative value."""


@dataclass(frozen=True)
class NumericFeature:
    name: str
    transform: str | None = None


@dataclass(frozen=True)
class DatasetConfig:
    """One tabular binary-classification dataset, partitioned by day."""

    name: str
    location: str
    id_column: str
    label_column: str
    expectation_suite: str
    registered_model: str
    numeric_features: tuple[NumericFeature, ...]
    categorical_features: dict[str, tuple[str, ...]]
    holdout_fraction: float
    holdout_salt: str
    file_glob: str = "*.parquet"
    slices: tuple[str, ...] = ()
    description: str = ""
    source: Path | None = field(default=None, compare=False)
    # The label's value for the positive class (1 after mapping) and for the negative one (0).
    label_positive: LabelValue = 1
    label_negative: LabelValue = 0
    # The registered model's description; empty: the dataset's description.
    model_description: str = ""
    # The Airflow DAG that runs this dataset's pipeline, and the MLflow experiment its runs log to.
    dag_id: str = ""
    experiment: str = ""

    @property
    def feature_columns(self) -> list[str]:
        return [f.name for f in self.numeric_features] + list(self.categorical_features)

    @property
    def required_columns(self) -> list[str]:
        return [self.id_column, *self.feature_columns, self.label_column]

    @property
    def registered_model_description(self) -> str:
        """What the registry shows for this dataset's registered model."""
        return (
            self.model_description
            or self.description
            or f"Probability that {self.label_column} is {self.label_positive!r} (dataset {self.name})."
        )

    def partition_dir(self, lake: Path, day: dt.date) -> Path:
        return Path(lake) / self.location.format(date=day.isoformat())

    def partition_files(self, lake: Path, day: dt.date) -> list[Path]:
        """Data files of one partition, sorted; raises if the partition has none."""
        directory = self.partition_dir(lake, day)
        files = sorted(p for p in directory.glob(self.file_glob) if p.is_file())
        if not files:
            raise PartitionNotFoundError(
                f"dataset {self.name!r}: partition {day.isoformat()} has no files matching "
                f"{self.file_glob!r} in {directory}"
            )
        return files

    def read_partitions(self, lake: Path, days: list[dt.date], columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for day in days:
            for path in self.partition_files(lake, day):
                frames.append(pd.read_parquet(path, columns=columns))
        return pd.concat(frames, ignore_index=True)

    def holdout_mask(self, ids: Any) -> Any:
        """Boolean array: True where a row belongs to the held-out set."""
        import numpy as np

        salt = self.holdout_salt.encode()
        threshold = int(self.holdout_fraction * 2**64)
        out = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(salt + str(i).encode(), digest_size=8).digest(), "big") < threshold
                for i in ids
            ),
            dtype=bool,
            count=len(ids),
        )
        return out

    # -- the label rule: the only place that turns label values into 0/1 -------------------

    def binary_labels(self, data: pd.DataFrame | pd.Series) -> np.ndarray:
        """The label column (of a frame, or the column itself) as 0/1 int64: 1 where it equals
        ``label_positive``, 0 where it equals ``label_negative``.

        Raises LabelError (one line: the column and the other values seen, with counts) when
        the column is missing or holds anything else, nulls included.
        """
        import numpy as np

        column, counts, problem = self._label_counts(data)
        if problem:
            raise LabelError(problem)
        positives = [v for v in counts.index if _label_equals(v, self.label_positive)]
        return column.isin(positives).to_numpy(dtype=bool).astype(np.int64)

    def label_problem(self, data: pd.DataFrame | pd.Series) -> str | None:
        """What ``binary_labels`` would refuse in `data` (one line), or None when every label maps."""
        return self._label_counts(data)[2]

    def _label_counts(self, data: Any) -> tuple[Any, Any, str | None]:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            if self.label_column not in data.columns:
                shown = ", ".join(map(str, list(data.columns)[:20]))
                missing = f"dataset {self.name!r}: label column {self.label_column!r} is missing (columns: {shown})"
                return None, None, missing
            column = data[self.label_column]
        else:
            column = pd.Series(data)
        counts = column.value_counts(dropna=False, sort=True)
        return column, counts, self.label_problem_in_counts(counts)

    def label_problem_in_counts(self, counts: pd.Series, values_left_out: int = 0) -> str | None:
        """``label_problem`` from the label column's value counts (most frequent first).

        `values_left_out`: distinct values beyond those in `counts` (a column far from binary,
        counted but not listed); each counts as a value that does not map.
        """
        unmapped = [
            (value, int(n))
            for value, n in counts.items()
            if n and not (_label_equals(value, self.label_positive) or _label_equals(value, self.label_negative))
        ]
        if not unmapped and not values_left_out:
            return None
        shown = ", ".join(
            f"{_show_value(v)} ({n} row{'' if n == 1 else 's'})" for v, n in unmapped[:_MAX_LISTED_VALUES]
        )
        if len(unmapped) + values_left_out > _MAX_LISTED_VALUES:
            shown += f", and {len(unmapped) + values_left_out - min(len(unmapped), _MAX_LISTED_VALUES)} more values"
        message = (
            f"dataset {self.name!r}: label column {self.label_column!r} has values that are neither positive "
            f"{self.label_positive!r} nor negative {self.label_negative!r}: {shown}"
        )
        expected = {str(self.label_positive): self.label_positive, str(self.label_negative): self.label_negative}
        lookalike = next((v for v, _ in unmapped if not _is_null(v) and str(_plain(v)) in expected), None)
        if lookalike is not None:
            ours = expected[str(_plain(lookalike))]
            message += (
                f" (the config's {ours!r} is {_type_word(ours)}, the column's {_show_value(lookalike)} is "
                f"{_type_word(_plain(lookalike))}: write label.positive/negative with the column's type, "
                "quoted for strings)"
            )
        return message


def _is_null(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str) else value


def _label_equals(value: Any, target: LabelValue) -> bool:
    """Whether a label cell equals a configured label value: strings only equal strings;
    numbers and booleans compare as numbers (1 == 1.0 == True)."""
    if _is_null(value):
        return False
    value = _plain(value)
    if isinstance(value, str) != isinstance(target, str):
        return False
    try:
        return bool(value == target)
    except (TypeError, ValueError):
        return False


def _show_value(value: Any) -> str:
    return "null" if _is_null(value) else repr(_plain(value))


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def parse_date(value: str) -> dt.date:
    """Parse YYYY-MM-DD strictly; the error names the bad value."""
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")
    return dt.date.fromisoformat(value)


def window(end: dt.date, days: int) -> list[dt.date]:
    """The `days` consecutive dates ending with `end`, oldest first."""
    if days < 1:
        raise ValueError(f"a training window needs at least one day, got {days}")
    return [end - dt.timedelta(days=days - 1 - i) for i in range(days)]


def partitions_sha256(files: list[Path]) -> str:
    """Content hash over the data files (names and bytes), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_dataset_config(path: Path | str) -> DatasetConfig:
    """Read and check a dataset config file; every error is one line naming the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetConfigError(f"dataset config not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetConfigError(f"{path}: dataset config cannot be read: {exc}") from None
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DatasetConfigError(f"{path}: dataset config is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise DatasetConfigError(
            f"{path}: a dataset config must be a mapping of keys (see datasets/card_fraud.yaml), got {yaml_kind(raw)}"
        )
    problem = duplicate_key(root)
    if problem:
        raise DatasetConfigError(f"{path}: {problem}")
    try:
        spec = DatasetFile.model_validate(raw)
    except ValidationError as exc:
        # An unknown key first: a misspelt key is also a missing one, and its message says which.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = describe_dataset_error(errors[0], raw, root)
        others = len({tuple(e["loc"]) for e in errors}) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        raise DatasetConfigError(f"{path}: {first}{more}") from None
    problem = label_booleans(spec, root) or consistency_problem(spec)
    if problem:
        raise DatasetConfigError(f"{path}: {problem}")
    positive = 1 if spec.label.positive is None else spec.label.positive
    negative = 0 if spec.label.negative is None else spec.label.negative
    return DatasetConfig(
        name=spec.name,
        description=spec.description.strip(),
        location=spec.location,
        file_glob=spec.file_glob,
        id_column=spec.id_column,
        label_column=spec.label.column,
        label_positive=positive,
        label_negative=negative,
        expectation_suite=spec.expectation_suite,
        registered_model=spec.registered_model,
        model_description=spec.model_description.strip(),
        dag_id=spec.dag_id or f"{spec.name}_pipeline",
        experiment=spec.experiment.strip() or spec.dag_id or f"{spec.name}_pipeline",
        numeric_features=tuple(NumericFeature(name, f.transform) for name, f in spec.numeric_features.items()),
        categorical_features={name: tuple(vocab) for name, vocab in spec.categorical_features.items()},
        holdout_fraction=float(spec.holdout.fraction),
        holdout_salt=spec.holdout.salt,
        slices=tuple(spec.slices),
        source=path,
    )
