"""The trainer's settings, read from the environment once: the trainer's mirror of ``settings.py``.

The trainer imports nothing of the control plane, so it cannot use ``include.mlops.settings``; this
module reads the same variables with the same defaults (``tests/unit/test_trainer_env.py`` holds the
two together), and the control plane sets exactly ``TRAINER_KEYS`` for a trainer job
(``Settings.trainer_env``, and the pod's environment on Kubernetes).

| variable | default |
| --- | --- |
| ``MLOPS_LAKE`` | ``$MLOPS_HOME/lake`` (``MLOPS_HOME``: ``<repo>/.local``) |
| ``MLFLOW_TRACKING_URI`` | MLflow's own default |
| ``MLOPS_MLFLOW_ARTIFACT_ROOT`` | the tracking server's (none) |
| ``MLOPS_GIT_COMMIT`` | ``unknown`` (the image bakes it in; the local launcher passes it) |
| ``MLOPS_TRAINER_DIGEST_DIR`` | none (tests: each rank's final weights, hashed) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# What the control plane hands every trainer job (beside MLOPS_GIT_COMMIT, which the image bakes in).
TRAINER_KEYS = ("MLOPS_LAKE", "MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_ARTIFACT_ROOT")


@dataclass(frozen=True)
class TrainerEnv:
    lake: Path
    tracking_uri: str | None
    artifact_root: str | None
    git_commit: str
    digest_dir: Path | None


def trainer_env(environ: Mapping[str, str] | None = None) -> TrainerEnv:
    env = os.environ if environ is None else environ
    home = Path(env.get("MLOPS_HOME", PROJECT_ROOT / ".local")).resolve()
    digest_dir = env.get("MLOPS_TRAINER_DIGEST_DIR")
    return TrainerEnv(
        lake=Path(env.get("MLOPS_LAKE", home / "lake")).resolve(),
        tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
        artifact_root=env.get("MLOPS_MLFLOW_ARTIFACT_ROOT") or None,
        git_commit=env.get("MLOPS_GIT_COMMIT") or "unknown",
        digest_dir=Path(digest_dir) if digest_dir else None,
    )
