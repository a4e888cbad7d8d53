"""Great Expectations' SQL execution engine over DuckDB, for partitions larger than memory.

DuckDB scans the partition's parquet files out of core (a view over ``read_parquet``), so GX's
own SQL metrics (counts, ``GROUP BY`` for uniqueness, ordered aggregates for the median, regex)
run in bounded memory however many rows a partition has. GX 1.x has no DuckDB dialect; this
module is the small bridge, checked by ``tests/integration/test_validation_out_of_core.py``:

- ``ValidationDuckDBDialect`` is duckdb-engine's SQLAlchemy dialect (itself derived from
  SQLAlchemy's PostgreSQL dialect) under the PostgreSQL name, so GX builds PostgreSQL SQL, which
  DuckDB speaks. It never opens a transaction: validation only reads, and a ``ROLLBACK`` when GX
  returns a connection to the pool would drop the result GX has yet to fetch (DuckDB keeps one
  result per connection). It reflects columns with DuckDB's ``DESCRIBE`` (duckdb-engine's
  catalog query fails on SQLAlchemy 2.1).
- Its compiler turns PostgreSQL's regex operators into DuckDB's ``regexp_matches``: the same
  ``~`` means "matches somewhere" in PostgreSQL and "matches all of it" in DuckDB.
- Each connection gets ``mlops_contains_card_number``, the same Python rule as the pandas
  expectation (``include.mlops.common.pii``), called only on values a regex finds 13+ digits in.

Types are the one part of a suite that names pandas dtypes. They are schema facts, the same for
every row, so ``include.mlops.validation.suite`` checks them through GX's pandas engine on the
partition's empty frame, in the same checkpoint run.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import duckdb_engine
import sqlalchemy as sa
from sqlalchemy.dialects import registry

from include.mlops.common.pii import contains_card_number

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DRIVER = "duckdb+mlopsvalidation"
CARD_NUMBER_FUNCTION = "mlops_contains_card_number"
# A superset of what include.mlops.common.pii matches (13 to 19 digits, one separator at most between
# two): only values with such a run reach the Python check.
CARD_NUMBER_CANDIDATE = r"[0-9]([ .\-]?[0-9]){12}"


def _card_number(text: str | None, letters_may_touch: bool) -> bool:
    return contains_card_number(text, bool(letters_may_touch))


class _ValidationCompiler(duckdb_engine.Dialect.statement_compiler):
    """PostgreSQL's ``~`` finds a match anywhere, DuckDB's ``~`` must match the whole value: GX
    writes regex expectations with ``~`` / ``!~`` for PostgreSQL, so they become DuckDB's
    ``regexp_matches``, which searches (as GX's pandas engine does)."""

    def visit_custom_op_binary(self, element: Any, operator: Any, **kw: Any) -> str:
        if operator.opstring in ("~", "!~"):
            found = f"regexp_matches({self.process(element.left, **kw)}, {self.process(element.right, **kw)})"
            return found if operator.opstring == "~" else f"(NOT {found})"
        return super().visit_custom_op_binary(element, operator, **kw)


class ValidationDuckDBDialect(duckdb_engine.Dialect):
    name = "postgresql"
    supports_statement_cache = False
    statement_compiler = _ValidationCompiler

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        import duckdb

        conn = super().connect(*cargs, **cparams)
        conn.create_function(
            CARD_NUMBER_FUNCTION,
            _card_number,
            [duckdb.sqltype("VARCHAR"), duckdb.sqltype("BOOLEAN")],
            duckdb.sqltype("BOOLEAN"),
        )
        return conn

    def get_columns(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> list[dict]:
        quoted = self.identifier_preparer.quote(table_name)
        rows = connection.exec_driver_sql(f"DESCRIBE {quoted}").fetchall()
        return [
            {"name": name, "type": self._sa_type(kind), "nullable": null == "YES", "default": None}
            for name, kind, null, *_ in rows
        ]

    def _sa_type(self, kind: str) -> sa.types.TypeEngine:
        from sqlalchemy.dialects import postgresql as pg

        upper = kind.upper()
        if upper in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            return pg.TIMESTAMP(timezone=True)
        found = self.ischema_names.get(kind.lower()) or self.ischema_names.get(upper.split("(")[0].lower())
        return found() if isinstance(found, type) else (found or sa.types.NullType())


registry.register(DRIVER.replace("+", "."), __name__, "ValidationDuckDBDialect")


def duckdb_config(spill_dir: Path | None = None) -> dict[str, Any]:
    """DuckDB's settings for validation: a memory limit, and where to spill beyond it.

    ``MLOPS_VALIDATION_MEMORY_MIB`` (default 512) bounds DuckDB's buffers; sorts and
    aggregations larger than that (uniqueness, the median) spill to `spill_dir`.
    """
    from include.mlops.settings import env_number

    config: dict[str, Any] = {
        "memory_limit": f"{int(env_number('MLOPS_VALIDATION_MEMORY_MIB', '512'))}MiB",
        "preserve_insertion_order": False,  # no row order to keep: counts and aggregates only
    }
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    return config


@contextlib.contextmanager
def duckdb_connection(spill_dir: Path | None = None) -> Iterator[Any]:
    """A plain in-memory DuckDB connection with the validation settings."""
    import duckdb

    con = duckdb.connect(config=duckdb_config(spill_dir))
    try:
        yield con
    finally:
        con.close()


def card_number_condition(column: Any, letters_may_touch: bool) -> Any:
    """True where a value holds no card number (GX's map-metric condition, for SQL)."""
    candidate = sa.func.regexp_matches(column, CARD_NUMBER_CANDIDATE)
    found = sa.func.mlops_contains_card_number(column, sa.literal(bool(letters_may_touch)))
    return sa.case((candidate, sa.not_(found)), else_=sa.true())
