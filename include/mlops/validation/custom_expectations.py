"""Custom Great Expectations 1.x expectations used by the suites in ``expectations/``.

Importing this module registers them with GX; ``include.mlops.validation.suite`` does so before it
loads a suite.
"""

from __future__ import annotations

from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from include.mlops.common.pii import contains_card_number
from include.mlops.validation.duckdb_engine import (
    card_number_condition,  # also registers the dialect the out-of-core source names
)

CARD_NUMBER_EXPECTATION = "expect_column_values_to_contain_no_card_numbers"


class ColumnValuesContainNoCardNumbers(ColumnMapMetricProvider):
    condition_metric_name = "column_values.contain_no_card_numbers"
    condition_value_keys = ("letters_may_touch",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, letters_may_touch=True, **kwargs):
        return ~column.map(lambda v: contains_card_number(v, letters_may_touch)).astype(bool)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, letters_may_touch=True, **kwargs):
        return card_number_condition(column, letters_may_touch)  # DuckDB only: the check is a function it holds


class ExpectColumnValuesToContainNoCardNumbers(ColumnMapExpectation):
    """PII: no value holds a card number (13-19 digits, any separators, Luhn-valid).

    ``letters_may_touch`` (default true, for free text): a number glued to letters counts;
    set it false for identifiers that mix letters and digits by design (hex tokens).
    """

    letters_may_touch: bool = True
    map_metric = "column_values.contain_no_card_numbers"
    success_keys = ("mostly", "letters_may_touch")
