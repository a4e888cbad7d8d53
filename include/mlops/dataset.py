"""Dataset descriptions: what a dataset's partitions look like and how a model reads them.

This module is shared by the Airflow control plane and the trainer image, so it only
imports the standard library and PyYAML at module level; pandas is imported where
partitions are read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRANSFORMS = {"log1p", None}


class DatasetConfigError(ValueError):
    """A dataset config file is missing, unreadable or inconsistent."""


class PartitionNotFoundError(FileNotFoundError):
    """A partition the run needs has no data files."""


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

    @property
    def feature_columns(self) -> list[str]:
        return [f.name for f in self.numeric_features] + list(self.categorical_features)

    @property
    def required_columns(self) -> list[str]:
        return [self.id_column, *self.feature_columns, self.label_column]

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
    """Read and check a dataset config file; every error names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetConfigError(f"dataset config not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise DatasetConfigError(f"dataset config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetConfigError(f"dataset config {path} must be a mapping")

    def need(key: str, kind: type) -> Any:
        if key not in raw:
            raise DatasetConfigError(f"dataset config {path}: missing key {key!r}")
        if not isinstance(raw[key], kind):
            raise DatasetConfigError(
                f"dataset config {path}: {key!r} must be {kind.__name__}, got {type(raw[key]).__name__}"
            )
        return raw[key]

    numeric = []
    for name, spec in (need("numeric_features", dict)).items():
        spec = spec or {}
        transform = spec.get("transform")
        if transform not in _TRANSFORMS:
            raise DatasetConfigError(
                f"dataset config {path}: numeric feature {name!r} has unknown transform {transform!r} (known: log1p)"
            )
        numeric.append(NumericFeature(name=name, transform=transform))

    categorical: dict[str, tuple[str, ...]] = {}
    for name, vocab in need("categorical_features", dict).items():
        if not isinstance(vocab, list) or not vocab or len(set(vocab)) != len(vocab):
            raise DatasetConfigError(
                f"dataset config {path}: categorical feature {name!r} needs a non-empty list of distinct values"
            )
        categorical[name] = tuple(str(v) for v in vocab)

    holdout = need("holdout", dict)
    fraction = holdout.get("fraction")
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise DatasetConfigError(f"dataset config {path}: holdout.fraction must be between 0 and 1, got {fraction!r}")
    location = need("location", str)
    if "{date}" not in location:
        raise DatasetConfigError(f"dataset config {path}: location must contain '{{date}}'")

    cfg = DatasetConfig(
        name=need("name", str),
        description=raw.get("description", ""),
        location=location,
        file_glob=raw.get("file_glob", "*.parquet"),
        id_column=need("id_column", str),
        label_column=need("label_column", str),
        expectation_suite=need("expectation_suite", str),
        registered_model=need("registered_model", str),
        numeric_features=tuple(numeric),
        categorical_features=categorical,
        holdout_fraction=float(fraction),
        holdout_salt=str(holdout.get("salt", "")),
        slices=tuple(raw.get("slices", ())),
        source=path,
    )
    features = set(cfg.feature_columns)
    if len(features) != len(cfg.feature_columns):
        raise DatasetConfigError(f"dataset config {path}: a feature is listed twice")
    for col in (cfg.id_column, cfg.label_column):
        if col in features:
            raise DatasetConfigError(f"dataset config {path}: {col!r} cannot also be a feature")
    for col in cfg.slices:
        if col not in cfg.categorical_features:
            raise DatasetConfigError(f"dataset config {path}: slice {col!r} must be a categorical feature")
    return cfg
