"""The card_fraud suite's checks written directly in pandas: the baseline GX is compared with.

Interprets the same suite JSON (the expectation types the suite uses) so both sides check
exactly the same things; the benchmark also asserts that both reach the same verdicts.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _between(series: pd.Series, lo: Any, hi: Any, strict_min: bool = False, strict_max: bool = False) -> pd.Series:
    ok = pd.Series(True, index=series.index)
    if lo is not None:
        ok &= series > lo if strict_min else series >= lo
    if hi is not None:
        ok &= series < hi if strict_max else series <= hi
    return ok


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """A suite parameter (``{"$PARAMETER": name}``) takes its value for this partition."""
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


def run_checks(
    df: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    out = []
    for exp in suite["expectations"]:
        kind = exp["type"]
        kw = {k: _resolve(v, parameters or {}) for k, v in exp["kwargs"].items()}
        col = kw.get("column")
        unexpected = None
        if col is not None and col not in df:
            out.append({"type": kind, "column": col, "success": False, "unexpected_count": None})
            continue
        s = df[col] if col is not None else None
        if kind == "expect_table_row_count_to_be_between":
            success = bool(_between(pd.Series([len(df)]), kw.get("min_value"), kw.get("max_value")).all())
        elif kind == "expect_table_columns_to_match_set":
            success = set(df.columns) == set(kw["column_set"])
        elif kind == "expect_column_values_to_be_in_type_list":
            names = {str(s.dtype), type(s.dtype).__name__}
            success = bool(names & set(kw["type_list"]))
        elif kind == "expect_column_values_to_be_of_type" and kw["type_"] == "str":
            # Any pandas string dtype, or object values that are all str (as GX checks them).
            if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
                success = True
            else:
                unexpected = int(sum(not isinstance(v, str) for v in s.dropna()))
                success = pd.api.types.is_object_dtype(s) and unexpected == 0
        elif kind == "expect_column_values_to_not_be_null":
            unexpected = int(s.isna().sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_be_unique":
            nn = s.dropna()
            unexpected = int(nn.duplicated(keep=False).sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_be_between":
            nn = s.dropna()
            within = _between(
                nn, kw.get("min_value"), kw.get("max_value"), kw.get("strict_min", False), kw.get("strict_max", False)
            )
            unexpected = int((~within).sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_be_in_set":
            nn = s.dropna()
            unexpected = int((~nn.isin(kw["value_set"])).sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_match_regex":
            nn = s.dropna().astype(str)
            unexpected = int((~nn.str.contains(kw["regex"], regex=True)).sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_not_match_regex":
            nn = s.dropna().astype(str)
            unexpected = int(nn.str.contains(kw["regex"], regex=True).sum())
            success = unexpected == 0
        elif kind == "expect_column_values_to_contain_no_card_numbers":
            from include.mlops.common.pii import contains_card_number

            touch = kw.get("letters_may_touch", True)
            unexpected = int(sum(contains_card_number(v, touch) for v in s.dropna()))
            success = unexpected == 0
        elif kind == "expect_column_mean_to_be_between":
            success = bool(_between(pd.Series([s.mean()]), kw.get("min_value"), kw.get("max_value")).all())
        elif kind == "expect_column_median_to_be_between":
            success = bool(_between(pd.Series([s.median()]), kw.get("min_value"), kw.get("max_value")).all())
        else:
            raise ValueError(f"no pandas implementation of {kind}")
        out.append({"type": kind, "column": col, "success": success, "unexpected_count": unexpected})
    return out
