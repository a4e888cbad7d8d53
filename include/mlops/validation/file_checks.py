"""Checks of a partition's files before GX reads them as one table: readable parquet, the suite's columns, one schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.mlops.validation.results import FailedExpectation

if TYPE_CHECKING:
    from pathlib import Path


def expected_columns(suite_json: dict[str, Any]) -> set[str] | None:
    """The column set the suite's table-level expectation demands, if it has one."""
    for e in suite_json.get("expectations", []):
        if e.get("type") == "expect_table_columns_to_match_set" and e.get("kwargs", {}).get("column_set"):
            return set(e["kwargs"]["column_set"])
    return None


def check_files(files: list[Path], expected: set[str] | None) -> tuple[int, list[FailedExpectation]]:
    """Per-file checks before the partition is read as one frame: (checks made, failures).

    Each file must be readable parquet (a truncated, empty or CSV file is named with why), have
    the suite's columns (missing and unexpected ones named), and agree with the partition's
    first file on every shared column's type (the differing file and columns named).
    """
    import pyarrow.parquet as pq

    failures: list[FailedExpectation] = []
    schemas = {}
    for path in files:
        try:
            schemas[path] = pq.read_schema(path)  # the footer: a truncated, empty or CSV file fails here
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            failures.append(
                FailedExpectation(
                    "file_is_readable_parquet",
                    None,
                    None,
                    None,
                    error=f"{path.name}: not readable as parquet ({reason})",
                )
            )
    for path, schema in schemas.items():
        names = set(schema.names)
        if expected is not None and names != expected:
            missing, unexpected = sorted(expected - names), sorted(names - expected)
            failures.append(
                FailedExpectation(
                    "expect_table_columns_to_match_set",
                    None,
                    None,
                    None,
                    error=f"{path.name}: missing columns {missing}, unexpected columns {unexpected}",
                )
            )
    if len(schemas) > 1:
        (first_path, first), *rest = schemas.items()
        for path, schema in rest:
            diffs = [
                f"{f.name} is {f.type} (in {first_path.name}: {first.field(f.name).type})"
                for f in schema
                if f.name in first.names and first.field(f.name).type != f.type
            ]
            if diffs:
                failures.append(
                    FailedExpectation(
                        "files_share_one_schema", None, None, None, error=f"{path.name}: {'; '.join(diffs)}"
                    )
                )
    return len(files) * (3 if len(files) > 1 else 2), failures


def partition_rows(files: list[Path]) -> int:
    """Rows in a partition's files, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in files)
