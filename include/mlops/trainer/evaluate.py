"""Score the candidate and the current champion on the same held-out rows.

Runs in the trainer environment (it loads TensorFlow models), as one process. The held-out
rows are the ones the dataset's salted-hash split keeps out of every training run, taken
from the run's partitions a parquet row group at a time: memory holds one row group and the
held-out rows' labels, scores and slice values, not the window. The champion is pinned by version number before scoring, so the
verdict names exactly the model it was compared with.
"""

from __future__ import annotations

import logging
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
    """(key, mask, positives, scorable) for each value of each slice column (categorical columns,
    as ``HoldoutScores`` keeps them, or any other dtype)."""
    import pandas as pd

    for col in slices:
        column = frame[col]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("string").fillna("<null>").astype("category")
        codes = column.cat.codes.to_numpy()
        for value in sorted(column.cat.categories):
            mask = codes == column.cat.categories.get_loc(value)
            if not mask.any():
                continue
            positives = int(y[mask].sum())
            scorable = MIN_SLICE_POSITIVES <= positives < mask.sum()
            yield f"{col}={value}", mask, positives, scorable


class HoldoutScores:
    """The held-out rows of a window, scored a row group at a time: only labels, scores and the
    slice columns (as category codes) stay in memory, never the rows' features."""

    def __init__(self, slices: list[str]) -> None:
        self.slices = slices
        self.labels: list[np.ndarray] = []
        self.scores: dict[str, list[np.ndarray]] = {}
        self._codes: dict[str, list[np.ndarray]] = {c: [] for c in slices}
        self._values: dict[str, dict[str, int]] = {c: {} for c in slices}

    def add(self, rows: Any, y: np.ndarray, scores: dict[str, np.ndarray]) -> None:
        self.labels.append(y)
        for name, p in scores.items():
            self.scores.setdefault(name, []).append(np.asarray(p, dtype=np.float64).reshape(-1))
        for col in self.slices:
            values = rows[col].astype("string").fillna("<null>").to_numpy()
            uniques, inverse = np.unique(values.astype(str), return_inverse=True)
            known = self._values[col]
            lookup = np.array([known.setdefault(v, len(known)) for v in uniques], dtype=np.int32)
            self._codes[col].append(lookup[inverse].reshape(-1))

    def y(self) -> np.ndarray:
        return np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.int64)

    def p(self, name: str) -> np.ndarray:
        return np.concatenate(self.scores[name]) if self.scores.get(name) else np.zeros(0)

    def slice_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {
                col: pd.Categorical.from_codes(
                    np.concatenate(self._codes[col]) if self._codes[col] else np.zeros(0, dtype=np.int32),
                    categories=list(self._values[col]),
                )
                for col in self.slices
            }
        )


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
    import pandas as pd

    from include.mlops.common.dataset import load_dataset_config, parse_date
    from include.mlops.common.files import write_json_atomic
    from include.mlops.common.tracking import get_alias, mlflow_client
    from include.mlops.trainer.shards import plan_shards, read_pieces

    client = mlflow_client()
    dataset = load_dataset_config(dataset_config)
    files = [f for day in (parse_date(p) for p in partitions) for f in dataset.partition_files(lake, day)]
    pieces = plan_shards(files, 1)[0]
    # The held-out labels first (two columns read): a value that is neither class fails, counted
    # over the whole holdout, before any model loads.
    dataset.binary_labels(
        pd.concat(
            [
                frame[dataset.label_column][dataset.holdout_mask(frame[dataset.id_column].to_numpy())]
                for frame in read_pieces(pieces, [dataset.id_column, dataset.label_column])
            ],
            ignore_index=True,
        )
    )
    # Pinned before scoring, so the verdict names exactly the model it was compared with.
    champion = get_alias(client, dataset.registered_model, "champion")
    champion_uri = f"models:/{dataset.registered_model}/{champion.version}" if champion is not None else None
    models = {"candidate": mlflow.pyfunc.load_model(candidate_uri)}
    if champion_uri:
        models["champion"] = mlflow.pyfunc.load_model(champion_uri)
    slices = list(dataset.slices)
    held = HoldoutScores(slices)
    columns = list(dict.fromkeys([dataset.id_column, *dataset.feature_columns, dataset.label_column, *slices]))
    for frame in read_pieces(pieces, columns):  # a row group at a time
        rows = frame[dataset.holdout_mask(frame[dataset.id_column].to_numpy())]
        if not len(rows):
            continue
        y = dataset.binary_labels(rows)  # LabelError names any value that is neither positive nor negative
        features = rows[dataset.feature_columns]
        held.add(rows, y, {name: model.predict(features) for name, model in models.items()})
    y = held.y()
    if y.sum() == 0:
        raise ValueError(
            f"held-out rows of {partitions} contain no positive label "
            f"({dataset.label_column} = {dataset.label_positive!r}); cannot score"
        )

    holdout = held.slice_frame()
    cand_p = held.p("candidate")
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "partitions": partitions,
        "holdout_rows": len(y),
        "holdout_positives": int(y.sum()),
        "candidate": {
            "model_uri": candidate_uri,
            "run_id": candidate_run_id,
            "metrics": binary_metrics(y, cand_p),
            "slices": slice_metrics(holdout, y, cand_p, slices),
            "slices_skipped": skipped_slices(holdout, y, slices),
        },
        "champion": None,
    }
    if champion is not None:
        champ_p = held.p("champion")
        result["champion"] = {
            "version": str(champion.version),
            "run_id": champion.run_id,
            "model_uri": champion_uri,
            "metrics": binary_metrics(y, champ_p),
            "slices": slice_metrics(holdout, y, champ_p, slices),
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
