"""What a validation produces: each failed expectation, each partition's outcome, and the error that stops a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    element_count: int | None
    observed_value: Any = None
    error: str | None = None

    def describe(self) -> str:
        where = f"[{self.column}]" if self.column else ""
        if self.error:
            detail = f"error: {self.error}"
        elif self.expectation == "expect_column_values_to_contain_no_card_numbers":
            detail = f"{self.unexpected_count} of {self.element_count} rows contain a card number (digits not shown)"
        elif self.unexpected_count is not None:
            detail = f"{self.unexpected_count} of {self.element_count} rows unexpected"
        elif self.observed_value is None:
            detail = "could not be evaluated (are the column's values of the expected type?)"
        elif isinstance(self.observed_value, float):
            detail = f"observed {self.observed_value:.4g}"
        else:
            detail = f"observed {self.observed_value!r}"
        return f"{self.expectation}{where}: {detail}"


@dataclass
class PartitionValidation:
    dataset: str
    partition: str
    sha256: str
    suite: str
    suite_sha256: str
    success: bool
    result_id: str
    evaluated: int
    failed: list[FailedExpectation] = field(default_factory=list)
    data_docs: str | None = None
    validated_at: str = ""
    airflow_run_id: str | None = None
    reused: bool = False
    engine: str | None = None  # "pandas" (in memory) or "duckdb" (out of core); None before the suite ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PartitionValidation:
        raw = dict(raw)
        raw["failed"] = [FailedExpectation(**f) for f in raw.get("failed", [])]
        return cls(**raw)


class DataValidationError(RuntimeError):
    """One or more partitions failed their suite; the message names every failure."""

    def __init__(self, results: list[PartitionValidation]):
        self.results = results
        lines = []
        for r in results:
            if r.success:
                continue
            lines.append(
                f"partition {r.partition} of {r.dataset!r} failed suite {r.suite!r} "
                f"({len(r.failed)} of {r.evaluated} expectations failed; quarantined):"
            )
            lines.extend(f"  - {f.describe()}" for f in r.failed)
        super().__init__("\n".join(lines))
