"""Data validation of day partitions with the Great Expectations 1.x core API.

The suite is the JSON file ``expectations/<suite>.json`` (the data contract, reviewed like
code). Validation only reads the partition. Its outcome is recorded beside the data:

- ``<lake>/_validation/<dataset>/date=<D>/<sha256[:16]>-<suite[:12]>.json`` for every run, so
  a partition whose bytes and suite have not changed is not validated twice;
- ``<lake>/_quarantine/<dataset>/date=<D>/quarantine.json`` when it fails.

Data Docs HTML is rebuilt for every validation, pass or fail. Results carry counts, never row
values: a partition that leaks card numbers must not copy them into docs or task logs. The pages
load their CSS/JS from the site itself (``include.mlops.validation.data_docs``), show each expectation's
``notes`` (``include.mlops.validation.gx_site``) and name the Airflow run in their Run Name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mlops.common.dataset import DatasetConfig, partitions_sha256
from include.mlops.common.files import exclusive_file_lock, write_json_atomic
from include.mlops.validation.file_checks import check_files, expected_columns, partition_rows
from include.mlops.validation.out_of_core import (
    checked_on_sample,
    duckdb_batch,
    in_memory_rows,
    label_problem_out_of_core,
    out_of_core_scratch,
    schema_of,
    type_sample,
)
from include.mlops.validation.quarantine import end_quarantine, quarantine_path
from include.mlops.validation.results import DataValidationError, FailedExpectation, PartitionValidation

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Counts only: no sample of unexpected values ever leaves the validation.
GX_LOCK_TIMEOUT_SECONDS = 1800  # a partition's validation takes seconds; a long wait is a stuck peer
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


LABEL_CHECK = "label_maps_to_positive_or_negative"  # the config's label rule, checked beside the suite


def suite_path(expectations_dir: Path, suite: str) -> Path:
    return Path(expectations_dir) / f"{suite}.json"


def load_suite_json(expectations_dir: Path, suite: str) -> tuple[dict[str, Any], str]:
    path = suite_path(expectations_dir, suite)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"expectation suite {suite!r} not found at {path}") from exc
    return json.loads(raw), hashlib.sha256(raw).hexdigest()


def record_path(validation_dir: Path, dataset: str, day: dt.date, sha: str, suite_sha: str) -> Path:
    return Path(validation_dir) / dataset / f"date={day.isoformat()}" / f"{sha[:16]}-{suite_sha[:12]}.json"


def gx_run_name(dataset: str, day: dt.date, airflow_run_id: str | None = None) -> str:
    """The GX run name: ``card_fraud:2026-01-01@scheduled__2026-01-02T00:00:00+00:00``.

    Data Docs show it as the validation page's Run Name (and in the index), which ties a page to
    the partition and the Airflow run that validated it. GX makes it a folder name, so characters
    outside Airflow's run-id set become ``_``. A reused result keeps the page (and the
    ``airflow_run_id``) of the run that validated those bytes.
    """
    name = f"{dataset}:{day.isoformat()}"
    if airflow_run_id:
        name += "@" + re.sub(r"[^A-Za-z0-9_.~:+-]", "_", airflow_run_id)[:150]
    return name


def partition_parameters(day: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
    """Suite parameters for one day's partition (``{"$PARAMETER": name}`` in the suite JSON)."""
    import pandas as pd

    start = pd.Timestamp(day.isoformat(), tz="UTC")
    now_ts = pd.Timestamp(now or dt.datetime.now(dt.UTC))
    return {"partition_start": start, "partition_end": min(start + pd.Timedelta(days=1), now_ts)}


# Schema facts named as pandas dtypes: on the out-of-core engine they are checked through GX's
# pandas engine on the partition's first rows (the dtypes a full read gives: _type_sample).


def run_suite(
    data: pd.DataFrame | list[Path],
    suite_json: dict[str, Any],
    gx_root: Path,
    run_name: str,
    parameters: dict[str, Any] | None = None,
) -> tuple[bool, str, int, list[FailedExpectation], str | None]:
    """Validate with GX; returns (success, result id, evaluated, failures, docs).

    `data` is a DataFrame (GX's pandas engine) or a partition's parquet files (GX's SQL engine
    over DuckDB, out of core: ``include.mlops.validation.duckdb_engine``; the type expectations, and comparisons
    whose types do not line up, then run on the pandas engine over the partition's first rows,
    in a second validation of the run: ``_checked_on_sample``).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import include.mlops.validation.custom_expectations  # noqa: F401 - registers the custom expectations the suites use
    from include.mlops.validation.gx_site import configure_sites

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    name = suite_json["name"]
    if isinstance(data, list):
        schema = schema_of(data)
        on_sample = [checked_on_sample(e, schema, parameters or {}) for e in suite_json["expectations"]]
        kinds = [e for e, sample in zip(suite_json["expectations"], on_sample, strict=True) if sample]
        rows = [e for e, sample in zip(suite_json["expectations"], on_sample, strict=True) if not sample]
        parts = [("rows", name, rows, data), ("types", f"{name}.types", kinds, type_sample(data))]
    else:
        parts = [("frame", name, suite_json["expectations"], data)]
    # One GX file context per MLOPS_HOME, shared by every run: the suite, validation definition
    # and checkpoint are saved by name, so concurrent runs (a backfill) take turns here.
    with exclusive_file_lock(Path(gx_root) / ".context.lock", timeout=GX_LOCK_TIMEOUT_SECONDS):
        context = gx.get_context(mode="file", project_root_dir=str(gx_root))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        docs_sites = configure_sites(context)
        built_after_ns = time.time_ns() - 2_000_000_000  # margin for coarse file-system clocks
        outcomes = []
        run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))  # one for both parts
        with out_of_core_scratch(Path(gx_root)) as spill:
            for kind, suite_name, expectations, source in parts:
                if kind == "types" and not expectations:
                    continue
                outcomes.append(
                    _run_part(
                        context, gx, kind, suite_name, expectations, source, suite_json, parameters, run_id, spill
                    )
                )
        for site in docs_sites:
            _localize_docs(site, built_after_ns)
        failures = [_failure(er) for _, r in outcomes for er in r.results if not er.success]
        key = outcomes[0][0]  # the rows' validation (its page links the run); the types' is beside it
        docs = None
        sites = context.get_docs_sites_urls(resource_identifier=key)
        if sites:
            docs = sites[0]["site_url"]
        result_id = str(key).split("::", 1)[-1]
        success = all(bool(r.success) for _, r in outcomes)
        return success, result_id, sum(len(r.results) for _, r in outcomes), failures, docs


def _run_part(context, gx, kind, suite_name, expectations, source, suite_json, parameters, run_id, spill) -> Any:
    """One checkpoint run of (part of) the suite; returns (result key, suite result)."""
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(
            name=suite_name, expectations=expectations, notes=suite_json.get("notes"), meta=suite_json.get("meta")
        )
    )
    if kind == "rows":
        batch, batch_parameters = duckdb_batch(context, suite_name, source, spill), {}
    else:
        batch, batch_parameters = _pandas_batch(context, suite_name), {"dataframe": source}
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite_name}-partition", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{suite_name}-checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format=RESULT_FORMAT,
        )
    )
    result = checkpoint.run(batch_parameters=batch_parameters, expectation_parameters=parameters or {}, run_id=run_id)
    return next(iter(result.run_results.items()))


def _failure(er: Any) -> FailedExpectation:
    cfg = er.expectation_config
    res = er.result or {}
    exc = (er.exception_info or {}).get("exception_message") if er.exception_info else None
    return FailedExpectation(
        expectation=cfg.type,
        column=cfg.kwargs.get("column"),
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        observed_value=_jsonable(res.get("observed_value")),
        error=exc,
    )


def _pandas_batch(context: Any, asset_name: str) -> Any:
    source = context.data_sources.add_or_update_pandas("lake")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("partition")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("partition")


def _localize_docs(site: Path, built_after_ns: int) -> None:
    """Point the pages just built at the site's own CSS/JS; docs never fail a validation."""
    from include.mlops.validation.data_docs import localize_site

    try:
        localize_site(site, since_ns=built_after_ns)
    except Exception as exc:  # a docs problem is logged, the validation's verdict stands
        log.warning("Data Docs at %s not made offline-ready: %s: %s", site, type(exc).__name__, exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):  # numpy floats too: plain numbers in records and messages
        return float(value)
    if isinstance(value, int):
        return int(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return _jsonable(value.item())  # other numpy scalars
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def validate_partition(
    cfg: DatasetConfig,
    day: dt.date,
    *,
    lake: Path,
    expectations_dir: Path,
    gx_root: Path,
    validation_dir: Path,
    quarantine_dir: Path,
    airflow_run_id: str | None = None,
    reuse: bool = True,
) -> PartitionValidation:
    """Validate one partition, or reuse the passing record of identical bytes and suite."""
    import pandas as pd

    files = cfg.partition_files(lake, day)
    sha = partitions_sha256(files)
    suite_json, suite_sha = load_suite_json(expectations_dir, cfg.expectation_suite)
    record = record_path(validation_dir, cfg.name, day, sha, suite_sha)
    if reuse and record.exists():
        previous = PartitionValidation.from_dict(json.loads(record.read_text()))
        if previous.success:
            previous.reused = True
            log.info("partition %s: reusing passing validation %s", day, previous.result_id)
            return previous

    def outcome_of(success, result_id, evaluated, failures, docs, engine=None) -> PartitionValidation:
        return PartitionValidation(
            dataset=cfg.name,
            partition=day.isoformat(),
            sha256=sha,
            suite=cfg.expectation_suite,
            suite_sha256=suite_sha,
            success=success,
            result_id=result_id,
            evaluated=evaluated,
            failed=failures,
            data_docs=docs,
            validated_at=dt.datetime.now(dt.UTC).isoformat(),
            airflow_run_id=airflow_run_id,
            engine=engine,
        )

    qpath = quarantine_path(quarantine_dir, cfg.name, day)
    held = json.loads(qpath.read_text()) if qpath.exists() else None
    if held is not None and held.get("sha256") == sha:
        # Same bytes that were quarantined: blocked until they change or someone releases them.
        blocked = FailedExpectation(
            "partition_not_quarantined",
            None,
            None,
            None,
            error=(
                f"quarantined at {held.get('quarantined_at')} with these bytes; fix the data, or release it: "
                f"python -m include.mlops.validation release {cfg.name} {day.isoformat()}"
            ),
        )
        return outcome_of(False, f"quarantined-{sha[:16]}", 1, [blocked], None)
    checked, file_failures = check_files(files, expected_columns(suite_json))
    if file_failures:
        # The files cannot be read as one frame: the suite would only fail on symptoms.
        outcome = outcome_of(False, f"files-{sha[:16]}", checked, file_failures, None)
    else:
        rows = partition_rows(files)
        if rows <= in_memory_rows():
            data: pd.DataFrame | list[Path] = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
            label_problem = cfg.label_problem(data)
        else:  # out of core: GX's SQL engine over DuckDB
            data = files
            label_problem = label_problem_out_of_core(cfg, files)
        engine = "duckdb" if data is files else "pandas"
        log.info("partition %s: %d rows, validated %s", day, rows, "out of core" if data is files else "in memory")
        success, result_id, evaluated, failures, docs = run_suite(
            data,
            suite_json,
            gx_root,
            run_name=gx_run_name(cfg.name, day, airflow_run_id),
            parameters=partition_parameters(day),
        )
        # The dataset config's label rule, whatever the suite says: a label that does not map
        # to 0/1 would only fail later, inside training.
        if label_problem:
            failures = [*failures, FailedExpectation(LABEL_CHECK, cfg.label_column, None, rows, error=label_problem)]
            success = False
        outcome = outcome_of(success, result_id, evaluated + 1, failures, docs, engine)
    write_json_atomic(record, outcome.to_dict())
    if outcome.success:
        log.info("partition %s passed %d expectations (%s)", day, outcome.evaluated, outcome.result_id)
        if held is not None:  # fixed: the quarantine ends, its record stays in the history
            end_quarantine(qpath, {"cleared_at": outcome.validated_at, "cleared_by_sha256": sha})
    else:
        write_json_atomic(
            qpath,
            {
                "dataset": cfg.name,
                "partition": day.isoformat(),
                "partition_path": str(cfg.partition_dir(lake, day)),
                "files": [p.name for p in files],
                "sha256": sha,
                "reason": "failed expectation suite " + cfg.expectation_suite,
                "failed_expectations": [asdict(f) for f in outcome.failed],
                "validation_record": str(record),
                "data_docs": outcome.data_docs,
                "quarantined_at": outcome.validated_at,
                "airflow_run_id": airflow_run_id,
            },
        )
        log.error("partition %s quarantined: %s", day, qpath)
    return outcome


def validate_window(cfg: DatasetConfig, days: list[dt.date], **kwargs: Any) -> list[PartitionValidation]:
    """Validate every partition of a training window; raise DataValidationError on any failure.

    All partitions are validated before raising, so one failure message lists every bad day.
    """
    results = [validate_partition(cfg, day, **kwargs) for day in days]
    if not all(r.success for r in results):
        raise DataValidationError(results)
    return results


__all__ = ["DataValidationError", "FailedExpectation", "PartitionValidation", "quarantine_path"]
