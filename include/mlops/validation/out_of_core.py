"""Out-of-core validation: a partition bigger than ``in_memory_rows()`` is checked by GX's SQL engine
over DuckDB, which scans the parquet files with bounded buffers (``duckdb_engine``).

The type expectations (they name pandas dtypes) and comparisons with timezone-aware bounds of a
column that is not a timezone-aware timestamp are checked in pandas on the partition's first rows
(``checked_on_sample``, ``type_sample``); the label rule is checked on DuckDB's counts of each label
value (``label_problem_out_of_core``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mlops.settings import env_number

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

    from include.mlops.common.dataset import DatasetConfig

TYPE_EXPECTATIONS = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")


@contextlib.contextmanager
def out_of_core_scratch(gx_root: Path) -> Iterator[Path]:
    """A spill directory of this run's own; on the way out every DuckDB engine of the out-of-core
    source is disposed (each holds a database with up to its memory limit) and the directory
    removed. Called under the context lock, it also clears what a killed run left."""
    import gc
    import shutil
    import tempfile

    scratch = gx_root / "uncommitted" / "duckdb"
    scratch.mkdir(parents=True, exist_ok=True)
    for stale in scratch.glob("run-*"):
        shutil.rmtree(stale, ignore_errors=True)
    spill = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    try:
        yield spill
    finally:
        for source in OUT_OF_CORE_SOURCES:
            _dispose(source)
        OUT_OF_CORE_SOURCES.clear()
        gc.collect()  # the disposed engines' DuckDB databases go now, not at some later collection
        shutil.rmtree(spill, ignore_errors=True)


OUT_OF_CORE_SOURCES: list[Any] = []  # GX SQL datasources of the run in progress (disposed at its end)


def _dispose(source: Any) -> None:
    for get in ("get_engine", "get_execution_engine"):
        try:
            made = getattr(source, get)()
        except Exception:  # never built: nothing to dispose
            continue
        engine = getattr(made, "engine", made)
        if hasattr(engine, "dispose"):
            engine.dispose()


def duckdb_batch(context: Any, asset_name: str, files: list[Path], spill: Path) -> Any:
    """The partition's files as one table of GX's SQL engine, scanned by DuckDB out of core."""
    from include.mlops.validation.duckdb_engine import DRIVER, duckdb_config

    source = context.data_sources.add_or_update_sql(
        "lake_out_of_core",
        connection_string=f"{DRIVER}:///:memory:",
        kwargs={"connect_args": {"config": duckdb_config(spill)}},
    )
    OUT_OF_CORE_SOURCES.append(source)
    for asset in list(source.assets):
        source.delete_asset(asset.name)
    asset = source.add_query_asset(asset_name, query=f"SELECT * FROM {parquet_scan(files)}")
    return asset.add_batch_definition_whole_table("partition")


TYPE_SAMPLE_ROWS = 1000


def parquet_scan(files: list[Path]) -> str:
    """DuckDB SQL reading exactly `files` (quoted; no hive columns added from the path)."""
    listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_parquet([{listed}], hive_partitioning = false)"


def schema_of(files: list[Path]) -> Any:
    import pyarrow.parquet as pq

    return pq.read_schema(files[0])


def checked_on_sample(expectation: dict[str, Any], schema: Any, parameters: dict[str, Any]) -> bool:
    """Whether an out-of-core run checks `expectation` on the partition's first rows in pandas.

    The type expectations (they name pandas dtypes), and a comparison with timezone-aware
    bounds of a column that is not a timezone-aware timestamp: pandas refuses that comparison
    (the expectation fails, as on a full read) where DuckDB would cast the column and pass it.
    """
    import pyarrow as pa

    if expectation.get("type") in TYPE_EXPECTATIONS:
        return True
    kwargs = expectation.get("kwargs", {})
    bounds = [kwargs.get("min_value"), kwargs.get("max_value")]
    named = [parameters.get(b["$PARAMETER"]) for b in bounds if isinstance(b, dict) and "$PARAMETER" in b]
    if not any(getattr(v, "tzinfo", None) is not None for v in named) or kwargs.get("column") not in schema.names:
        return False
    kind = schema.field(kwargs["column"]).type
    return not (pa.types.is_timestamp(kind) and kind.tz is not None)


def type_sample(files: list[Path]) -> pd.DataFrame:
    """The first rows of the partition as a full read would give them (same columns and dtypes).

    Most dtypes are the schema's; a column pandas holds as ``object`` (decimal, binary, date)
    is checked value by value by GX, so it needs values: a parquet column holds one type, and
    its first rows show it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(files[0])
    first = next(parquet.iter_batches(batch_size=TYPE_SAMPLE_ROWS), None)
    table = (
        parquet.schema_arrow.empty_table() if first is None else pa.Table.from_batches([first], parquet.schema_arrow)
    )
    return table.to_pandas()


def in_memory_rows() -> int:
    """Partitions up to this many rows are validated in memory (pandas), bigger ones out of core.

    ``MLOPS_VALIDATION_IN_MEMORY_ROWS``, default 1,000,000: about 1 GiB of peak memory in pandas.
    """
    return int(env_number("MLOPS_VALIDATION_IN_MEMORY_ROWS", "1000000"))


def label_problem_out_of_core(cfg: DatasetConfig, files: list[Path]) -> str | None:
    """``DatasetConfig.label_problem`` on a partition's files, from DuckDB's counts of each label."""

    from include.mlops.validation.duckdb_engine import duckdb_connection

    schema = schema_of(files)
    if cfg.label_column not in schema.names:
        return cfg.label_problem(schema.empty_table().to_pandas())
    label = '"' + cfg.label_column.replace('"', '""') + '"'
    source = parquet_scan(files)
    with duckdb_connection() as con:
        # The most frequent values only: a label column far from binary (an id by mistake) has
        # millions of them, and the message lists a few.
        counts = con.execute(
            f"SELECT {label} AS value, count(*) AS n FROM {source} GROUP BY ALL ORDER BY n DESC LIMIT {LABEL_VALUES_COUNTED}"
        ).df()
        (distinct,) = con.execute(
            f"SELECT count(DISTINCT {label}) + coalesce(max(({label} IS NULL)::INT), 0) FROM {source}"
        ).fetchone()
    return cfg.label_problem_in_counts(counts.set_index("value")["n"], values_left_out=max(0, distinct - len(counts)))


LABEL_VALUES_COUNTED = 1000
