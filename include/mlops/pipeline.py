"""The steps of a pipeline DAG (``include.mlops.airflow.dag_factory`` wires them), for any dataset.

Here: plan, validate, gate and summarize; the trainer steps are ``include.mlops.training.steps``
and the registry steps ``include.mlops.registry.promotion``. Every step takes and returns small
JSON-serialisable dicts (references: partition dates, hashes, MLflow run ids, model URIs,
registry versions), never data or models.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from include.mlops.common.dataset import (
    DatasetConfig,
    DatasetConfigError,
    PartitionNotFoundError,
    load_dataset_config,
    parse_date,
    partitions_sha256,
    window,
)
from include.mlops.common.files import write_json_atomic
from include.mlops.common.tracking import mlflow_client
from include.mlops.runs import BACKFILL
from include.mlops.settings import Settings, get_settings

if TYPE_CHECKING:
    from include.mlops.runs import RunRef

log = logging.getLogger(__name__)


class PartitionChangedError(RuntimeError):
    """A partition's bytes changed after it was validated."""


def latest_partition(settings: Settings, dataset: str) -> dt.date:
    cfg = load_dataset_config(settings.dataset_config_path(dataset))
    pattern = cfg.location.format(date="*")
    dates = []
    for path in settings.lake.glob(pattern):
        stamp = path.name.split("=", 1)[-1]
        try:
            dates.append(parse_date(stamp))
        except ValueError:
            continue
    if not dates:
        raise FileNotFoundError(f"no partitions of dataset {dataset!r} under {settings.lake / pattern}")
    return max(dates)


def partition_arrival(
    dataset: str, day: dt.date, deadline: dt.datetime, now: dt.datetime | None = None, settings: Settings | None = None
) -> tuple[str, str]:
    """Whether a scheduled run's partition is here: ``("ready"|"waiting"|"overdue", one line)``."""
    settings = settings or get_settings()
    cfg = load_dataset_config(settings.dataset_config_path(dataset))
    try:
        cfg.partition_files(settings.lake, day)
        return "ready", f"partition {day.isoformat()} of {dataset!r} is in the lake"
    except PartitionNotFoundError:
        pass
    now = now or dt.datetime.now(dt.UTC)
    where = cfg.partition_dir(settings.lake, day)
    if now < deadline:
        return (
            "waiting",
            f"waiting for partition {day.isoformat()} of {dataset!r} at {where} until {deadline.isoformat()}",
        )
    return "overdue", (
        f"run for {day.isoformat()}: partition {day.isoformat()} of {dataset!r} did not arrive at {where} "
        f"by {deadline.isoformat()}"
    )


def plan_window(
    dataset: str,
    partition_date: str | None,
    window_days: int,
    data_interval_start: dt.datetime | None,
    settings: Settings | None = None,
    run_type: str = "scheduled",
    dag_id: str | None = None,
) -> dict[str, Any]:
    """Which partitions this run validates and trains on, with their content hash.

    The run's day is, in order: the ``partition_date`` param; the start of the run's data
    interval for scheduled and backfill runs; the newest partition in the lake for any other
    run (a manual trigger, from the UI's form with its defaults, the API or the CLI).
    `dag_id`: the DAG of the run, which must be the one the dataset's config names.
    """
    settings = settings or get_settings()
    cfg = load_dataset_config(settings.dataset_config_path(dataset))
    if dag_id is not None and dag_id != cfg.dag_id:
        raise DatasetConfigError(
            f"DAG {dag_id} runs dataset {dataset!r}, but {cfg.source} names dag_id {cfg.dag_id!r}: "
            "make the DAG file and the config agree"
        )
    if partition_date:
        day = parse_date(partition_date)
    elif data_interval_start is not None and getattr(run_type, "value", run_type) in ("scheduled", BACKFILL):
        day = data_interval_start.date()
    else:
        day = latest_partition(settings, dataset)
    days = window(day, window_days)
    files, missing = [], []
    for d in days:
        try:
            files += cfg.partition_files(settings.lake, d)
        except PartitionNotFoundError:
            missing.append(d.isoformat())
    if missing:
        raise PartitionNotFoundError(
            f"run for {day.isoformat()}: no data for {len(missing)} of the {len(days)} partitions of its window "
            f"({', '.join(missing)}) under {cfg.partition_dir(settings.lake, day).parent}; load them, or trigger "
            "with partition_date set to a day that has data"
        )
    start = dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    holdout = holdout_window(cfg, settings, days, window_days)
    return {
        "dataset": cfg.name,
        "partition_date": day.isoformat(),
        "partitions": [d.isoformat() for d in days],
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "sha256": partitions_sha256(files),
        "files": len(files),
        "holdout_partitions": [d.isoformat() for d in holdout],
        "holdout_sha256": partitions_sha256([f for d in holdout for f in cfg.partition_files(settings.lake, d)]),
    }


def holdout_window(cfg: DatasetConfig, settings: Settings, days: list[dt.date], window_days: int) -> list[dt.date]:
    """The partitions whose held-out rows score candidate and champion alike: the newest
    ``window_days`` days in the lake that have data and are not in quarantine.

    Never the candidate's own window when newer data exists: a model trained on older days
    (a backfill, a rerun) is judged on today's data, as the champion it would replace is.
    Rows are held out by a hash of their id, so no model ever trained on them. Newer days not
    yet validated are validated by this run before anyone is scored on them.
    """
    from include.mlops.validation.suite import quarantine_path

    newest = latest_partition(settings, cfg.name)
    if newest <= days[-1]:
        return days
    chosen = []
    for d in window(newest, window_days):
        try:
            cfg.partition_files(settings.lake, d)
        except PartitionNotFoundError:
            continue
        if not quarantine_path(settings.quarantine_dir, cfg.name, d).exists():
            chosen.append(d)
    return chosen or days


def validate_windows(plan_: dict[str, Any], run: RunRef, settings: Settings | None = None) -> dict[str, Any]:
    """GX suite on every partition of the window and of the holdout window; raises
    DataValidationError on any failure."""
    from include.mlops.validation.suite import validate_window

    settings = settings or get_settings()
    cfg = load_dataset_config(settings.dataset_config_path(plan_["dataset"]))
    days = sorted({*plan_["partitions"], *plan_.get("holdout_partitions", [])})
    results = validate_window(
        cfg,
        [parse_date(p) for p in days],
        lake=settings.lake,
        expectations_dir=settings.expectations_dir,
        gx_root=settings.gx_root,
        validation_dir=settings.validation_dir,
        quarantine_dir=settings.quarantine_dir,
        airflow_run_id=run.run_id,
    )
    return {
        "success": True,
        "suite": cfg.expectation_suite,
        "result_ids": [r.result_id for r in results],
        "partitions": {r.partition: {"sha256": r.sha256, "reused": r.reused} for r in results},
        "evaluated": sum(r.evaluated for r in results),
        "data_docs": next((r.data_docs for r in reversed(results) if r.data_docs), None),
    }


def check_unchanged(plan_: dict[str, Any], settings: Settings) -> None:
    cfg = load_dataset_config(settings.dataset_config_path(plan_["dataset"]))
    files = [f for p in plan_["partitions"] for f in cfg.partition_files(settings.lake, parse_date(p))]
    now = partitions_sha256(files)
    if now != plan_["sha256"]:
        raise PartitionChangedError(
            f"partitions {plan_['partitions']} changed since they were planned and validated "
            f"(sha256 {plan_['sha256'][:12]} -> {now[:12]}); re-run the DAG run from the start"
        )


def apply_gate(
    evaluation: dict[str, Any], training: dict[str, Any], params: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Apply the gate policy; log the verdict to the candidate's MLflow run and return it."""

    from include.mlops.evaluation.gate import GatePolicy, decide

    settings = settings or get_settings()
    policy = GatePolicy(
        min_pr_auc=float(params["min_pr_auc"]),
        max_regression=float(params["max_regression"]),
        slice_max_regression=(
            float(params["slice_max_regression"]) if params.get("slice_max_regression") is not None else None
        ),
    )
    verdict = decide(evaluation["candidate"], evaluation.get("champion"), policy).to_dict()
    verdict["holdout_partitions"] = list(evaluation.get("partitions") or [])
    client = mlflow_client(settings.mlflow_tracking_uri)
    recorded = _decided_verdict(client, training["run_id"])
    if recorded is not None:
        log.info("gate: this candidate's promotion was decided already; its recorded verdict stands")
        return recorded
    client.log_dict(training["run_id"], verdict, "gate/verdict.json")
    client.set_tag(training["run_id"], "gate.passed", str(verdict["passed"]).lower())
    for line in verdict["reasons"]:
        log.info("gate: %s", line)
    return verdict


def _decided_verdict(client, training_run_id: str) -> dict[str, Any] | None:
    """The verdict recorded for a training run whose registered version's promotion was decided."""
    from include.mlops.registry.champion import recorded_decision

    versions = client.search_model_versions(f"run_id = '{training_run_id}'")
    if not any(recorded_decision(v) for v in versions):
        return None
    import mlflow

    return mlflow.artifacts.load_dict(f"runs:/{training_run_id}/gate/verdict.json")


def summarize_run(
    run: RunRef,
    plan_: dict[str, Any],
    validation: dict[str, Any],
    training: dict[str, Any],
    verdict: dict[str, Any],
    registration: dict[str, Any],
    promotion: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """What happened in this run, in one JSON file (``.local/runs/<dag>/<run>/summary.json``)."""

    from include.mlops.registry.champion import get_alias

    settings = settings or get_settings()
    client = mlflow_client(settings.mlflow_tracking_uri)
    name = registration["name"]
    aliases = [
        a
        for a in ("champion", "challenger")
        if (v := get_alias(client, name, a)) and str(v.version) == registration["version"]
    ]
    champion = get_alias(client, name, "champion")
    summary = {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "dataset": plan_["dataset"],
        "partitions": plan_["partitions"],
        "data_sha256": plan_["sha256"],
        "validation": {
            "success": validation["success"],
            "expectations_evaluated": validation["evaluated"],
            "data_docs": validation["data_docs"],
        },
        "training": {
            "mlflow_run_id": training["run_id"],
            "horovod_ranks": training["horovod_size"],
            "examples_per_sec": training.get("examples_per_sec"),
            "reused": training.get("reused", False),
        },
        "gate": {
            "passed": verdict["passed"],
            "reasons": verdict["reasons"],
            "holdout_partitions": verdict.get("holdout_partitions"),
        },
        "promotion": {
            "decision": (promotion or {}).get("decision"),
            "reason": (promotion or {}).get("reason"),
        },
        "registry": {
            "model": name,
            "version": registration["version"],
            "aliases": aliases,
            "champion_version": str(champion.version) if champion else None,
        },
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
    }
    write_json_atomic(settings.runs_dir / run.dag_id / run.safe_run_id / "summary.json", summary)
    write_json_atomic(settings.runs_dir / "latest-summary.json", summary)
    return summary
