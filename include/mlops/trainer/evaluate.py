"""Score the candidate and the current champion on the same held-out rows.

Runs in the trainer environment (it loads TensorFlow models), as one process. The held-out
rows are the ones the dataset's salted-hash split keeps out of every training run, taken
from the run's partitions. The champion is pinned by version number before scoring, so the
verdict names exactly the model it was compared with.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("mlops.evaluate")

MIN_SLICE_POSITIVES = 20


def binary_metrics(y: np.ndarray, p: np.ndarray, max_fpr: float = 0.01) -> dict[str, float]:
    """PR-AUC, ROC-AUC, recall at a fixed false-positive rate, log loss."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "pr_auc": float(average_precision_score(y, p)),
        "roc_auc": float(roc_auc_score(y, p)),
        f"recall_at_fpr_{max_fpr:g}": float(tpr[fpr <= max_fpr].max(initial=0.0)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "rows": len(y),
        "positives": int(y.sum()),
    }


def _slice_masks(frame: Any, y: np.ndarray, slices: list[str]):
    """(key, mask, positives, scorable) for each value of each slice column."""
    for col in slices:
        values = frame[col].astype("string").fillna("<null>").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            positives = int(y[mask].sum())
            scorable = MIN_SLICE_POSITIVES <= positives < mask.sum()
            yield f"{col}={value}", mask, positives, scorable


def skipped_slices(frame: Any, y: np.ndarray, slices: list[str]) -> dict[str, int]:
    """Slices too thin to score (fewer than MIN_SLICE_POSITIVES positives, or only positives): key -> positives."""
    return {key: positives for key, _, positives, ok in _slice_masks(frame, y, slices) if not ok}


def slice_metrics(frame: Any, y: np.ndarray, p: np.ndarray, slices: list[str]) -> dict[str, dict[str, Any]]:
    """PR-AUC per value of each slice column with enough positives to be meaningful."""
    from sklearn.metrics import average_precision_score

    return {
        key: {"pr_auc": float(average_precision_score(y[mask], p[mask])), "rows": int(mask.sum()), "positives": pos}
        for key, mask, pos, ok in _slice_masks(frame, y, slices)
        if ok
    }


def run_evaluation(
    dataset_config: Path,
    partitions: list[str],
    lake: Path,
    candidate_uri: str,
    candidate_run_id: str | None,
    result_path: Path | None,
) -> dict[str, Any]:
    import mlflow

    from include.mlops.dataset import load_dataset_config, parse_date
    from include.mlops.files import write_json_atomic
    from include.mlops.tracking import get_alias

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    dataset = load_dataset_config(dataset_config)
    frame = dataset.read_partitions(lake, [parse_date(p) for p in partitions])
    holdout = frame[dataset.holdout_mask(frame[dataset.id_column].to_numpy())].reset_index(drop=True)
    y = dataset.binary_labels(holdout)  # LabelError names any value that is neither positive nor negative
    if y.sum() == 0:
        raise ValueError(
            f"held-out rows of {partitions} contain no positive label "
            f"({dataset.label_column} = {dataset.label_positive!r}); cannot score"
        )

    features = holdout[dataset.feature_columns]
    candidate = mlflow.pyfunc.load_model(candidate_uri)
    cand_p = np.asarray(candidate.predict(features)).reshape(-1)
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "partitions": partitions,
        "holdout_rows": len(y),
        "holdout_positives": int(y.sum()),
        "candidate": {
            "model_uri": candidate_uri,
            "run_id": candidate_run_id,
            "metrics": binary_metrics(y, cand_p),
            "slices": slice_metrics(holdout, y, cand_p, list(dataset.slices)),
            "slices_skipped": skipped_slices(holdout, y, list(dataset.slices)),
        },
        "champion": None,
    }

    champion = get_alias(client, dataset.registered_model, "champion")
    if champion is not None:
        champ_model = mlflow.pyfunc.load_model(f"models:/{dataset.registered_model}/{champion.version}")
        champ_p = np.asarray(champ_model.predict(features)).reshape(-1)
        result["champion"] = {
            "version": str(champion.version),
            "run_id": champion.run_id,
            "model_uri": f"models:/{dataset.registered_model}/{champion.version}",
            "metrics": binary_metrics(y, champ_p),
            "slices": slice_metrics(holdout, y, champ_p, list(dataset.slices)),
        }

    if candidate_run_id:
        with mlflow.start_run(run_id=candidate_run_id):
            mlflow.log_metrics(
                {f"holdout_{k}": v for k, v in result["candidate"]["metrics"].items() if isinstance(v, float)}
            )
            mlflow.log_dict(result, "evaluation/evaluation.json")
    if result_path:
        write_json_atomic(result_path, result)
    log.info(
        "candidate PR-AUC %.4f; champion %s",
        result["candidate"]["metrics"]["pr_auc"],
        f"v{champion.version} PR-AUC {result['champion']['metrics']['pr_auc']:.4f}" if champion else "none",
    )
    return result
