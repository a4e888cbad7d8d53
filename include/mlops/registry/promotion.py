"""The pipeline's registry steps: register the candidate with its lineage, then decide its promotion.

``register_version`` registers once per training run (alias ``challenger``); ``decide_promotion``
records one decision per candidate and moves ``champion`` only through ``champion.move_champion``
(compare-and-set under the lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.mlops.common.dataset import load_dataset_config
from include.mlops.common.tracking import mlflow_client
from include.mlops.runs import BACKFILL
from include.mlops.settings import Settings, get_settings, git_commit

if TYPE_CHECKING:
    from include.mlops.runs import RunRef


def register_version(
    plan_: dict[str, Any],
    validation: dict[str, Any],
    training: dict[str, Any],
    verdict: dict[str, Any],
    run: RunRef,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Register the candidate (once per training run) with full lineage; alias ``challenger``."""

    from include.mlops.registry.champion import register_candidate

    settings = settings or get_settings()
    cfg = load_dataset_config(settings.dataset_config_path(plan_["dataset"]))
    client = mlflow_client(settings.mlflow_tracking_uri)
    tags = {
        "airflow.dag_id": run.dag_id,
        "airflow.run_id": run.run_id,
        "data.dataset": plan_["dataset"],
        "data.interval_start": plan_["interval_start"],
        "data.interval_end": plan_["interval_end"],
        "data.partitions": ",".join(plan_["partitions"]),
        "data.sha256": plan_["sha256"],
        "evaluation.partitions": ",".join(plan_.get("holdout_partitions") or plan_["partitions"]),
        "evaluation.sha256": plan_.get("holdout_sha256") or plan_["sha256"],
        "validation.success": str(bool(validation["success"])).lower(),
        "validation.result_id": ";".join(validation["result_ids"]),
        "validation.suite": validation["suite"],
        # The commit the trainer ran (baked into its image); the control plane's as a fallback.
        "code.git_commit": training.get("git_commit") or git_commit(settings.project_root),
        "train.horovod_size": str(training["horovod_size"]),
        "train.mlflow_run_id": training["run_id"],
        "gate.passed": str(bool(verdict["passed"])).lower(),
        "gate.champion_version": str(verdict.get("champion_version") or ""),
    }
    version, created = register_candidate(
        client,
        cfg.registered_model,
        training["model_uri"],
        training["run_id"],
        tags,
        description=cfg.registered_model_description,
    )
    return {"name": cfg.registered_model, "version": str(version.version), "created": created}


def beats_champion(verdict: dict[str, Any]) -> bool | None:
    """Whether the candidate's metric exceeds the champion's by more than the gate's tolerance
    (noise); None when there was no champion to compare with."""
    check = next((c for c in verdict.get("checks", []) if c.get("name") == "non_regression"), None)
    tolerance = (verdict.get("policy") or {}).get("max_regression")
    if not check or check.get("threshold") is None or check.get("value") is None or tolerance is None:
        return None
    champion = check["threshold"] + tolerance
    return check["value"] > champion + tolerance


def decide_promotion(
    registration: dict[str, Any],
    verdict: dict[str, Any],
    run_type: str = "manual",
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Decide, once per candidate, whether it becomes champion; move the alias if so.

    Not promoted, with the reason recorded on the version (tag ``promotion.decision``): a
    failed gate; a backfill run unless its conf sets ``promote_from_backfill``; a candidate
    trained on a window ending before the champion's. A rerun of a run that already decided
    changes nothing. Otherwise compare-and-set under the champion lock.
    """

    from include.mlops.registry.champion import move_champion, record_decision, recorded_decision

    settings = settings or get_settings()
    params = params or {}
    run_type = getattr(run_type, "value", run_type)
    client = mlflow_client(settings.mlflow_tracking_uri)
    name, version = registration["name"], registration["version"]
    decided = recorded_decision(client.get_model_version(name, version))
    if decided:
        return {**registration, "promoted": False, "decision": decided["decision"], "reason": decided["reason"]}
    if not verdict["passed"]:
        why = "gate failed: " + "; ".join(r for r in verdict["reasons"] if r.startswith("FAIL"))
        decided = record_decision(client, name, version, "rejected", why)
    elif run_type == BACKFILL and not params.get("promote_from_backfill"):
        why = "backfill run: candidate registered, champion not moved (set promote_from_backfill to allow it)"
        decided = record_decision(client, name, version, "held", why)
    else:
        outcome = move_champion(
            client,
            name,
            version,
            verdict.get("champion_version"),
            "; ".join(verdict["reasons"]),
            beats_champion=beats_champion(verdict),
        )
        decided = outcome.pop("decided", None)
        if not decided:
            return {**registration, **outcome, "decision": "promoted", "reason": "gate passed"}
    return {**registration, "promoted": False, "decision": decided["decision"], "reason": decided["reason"]}
