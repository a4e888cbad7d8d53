"""One settings object, read from the environment with embedded defaults.

Embedded default: everything lives under ``<repo>/.local`` (SQLite MLflow store, local
artifacts, a directory data lake). Production sets the same variables to a Postgres-backed
MLflow server, object storage and the Kubernetes launcher.

| variable | default |
| --- | --- |
| ``MLOPS_HOME`` | ``<repo>/.local`` |
| ``MLOPS_LAKE`` | ``$MLOPS_HOME/lake`` |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///$MLOPS_HOME/mlflow/mlflow.db`` |
| ``MLOPS_MLFLOW_ARTIFACT_ROOT`` | ``$MLOPS_HOME/mlflow/artifacts`` |
| ``MLOPS_EXPERIMENT`` | ``fraud_model_pipeline`` |
| ``MLOPS_TRAINER_VENV`` | ``<repo>/.venv-trainer`` |
| ``MLOPS_LAUNCHER`` | ``local`` |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    project_root: Path
    home: Path
    lake: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    experiment: str
    trainer_venv: Path
    launcher: str

    @property
    def datasets_dir(self) -> Path:
        return self.project_root / "datasets"

    @property
    def expectations_dir(self) -> Path:
        return self.project_root / "expectations"

    @property
    def gx_root(self) -> Path:
        return self.home / "gx"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def validation_dir(self) -> Path:
        """Validation records, beside the data and never inside a partition."""
        return self.lake / "_validation"

    @property
    def quarantine_dir(self) -> Path:
        return self.lake / "_quarantine"

    def dataset_config_path(self, dataset: str) -> Path:
        return self.datasets_dir / f"{dataset}.yaml"

    def trainer_env(self) -> dict[str, str]:
        """Environment the trainer job needs; the Kubernetes launcher sets the same keys."""
        return {
            "MLOPS_LAKE": str(self.lake),
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "MLOPS_MLFLOW_ARTIFACT_ROOT": self.mlflow_artifact_root,
            "MLOPS_EXPERIMENT": self.experiment,
        }


def get_settings() -> Settings:
    env = os.environ
    root = Path(env.get("MLOPS_PROJECT_ROOT", PROJECT_ROOT)).resolve()
    home = Path(env.get("MLOPS_HOME", root / ".local")).resolve()
    launcher = env.get("MLOPS_LAUNCHER", "local")
    if launcher not in ("local", "kubernetes"):
        raise ValueError(f"MLOPS_LAUNCHER must be 'local' or 'kubernetes', got {launcher!r}")
    return Settings(
        project_root=root,
        home=home,
        lake=Path(env.get("MLOPS_LAKE", home / "lake")).resolve(),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db"),
        mlflow_artifact_root=env.get("MLOPS_MLFLOW_ARTIFACT_ROOT", str(home / "mlflow" / "artifacts")),
        experiment=env.get("MLOPS_EXPERIMENT", "fraud_model_pipeline"),
        trainer_venv=Path(env.get("MLOPS_TRAINER_VENV", root / ".venv-trainer")).resolve(),
        launcher=launcher,
    )
