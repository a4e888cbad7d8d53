"""The trainer's settings mirror the control plane's: same variables, same defaults, so they cannot drift."""

import pytest

from include.mlops.settings import get_settings
from include.mlops.trainer.env import TRAINER_KEYS, trainer_env

pytestmark = pytest.mark.unit

ENVIRONMENTS = [
    {},
    {"MLOPS_HOME": "/srv/mlops"},
    {"MLOPS_HOME": "/srv/mlops", "MLOPS_LAKE": "/data/lake"},
    {"MLOPS_LAKE": "/data/lake", "MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLOPS_MLFLOW_ARTIFACT_ROOT": "s3://a"},
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_trainer_reads_what_the_control_plane_hands_it_with_the_same_defaults(env, monkeypatch):
    for key in ("MLOPS_HOME", "MLOPS_LAKE", "MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_ARTIFACT_ROOT", "MLOPS_PROJECT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    handed = settings.trainer_env()
    assert set(handed) == set(TRAINER_KEYS)  # a key added on one side only fails here
    # Without MLOPS_LAKE the control plane still hands its lake over; the trainer's default agrees.
    assert trainer_env(env).lake == trainer_env(handed).lake == settings.lake
    assert trainer_env(handed).tracking_uri == settings.mlflow_tracking_uri
    assert trainer_env(handed).artifact_root == settings.mlflow_artifact_root


def test_a_commit_and_a_digest_folder_are_optional():
    env = trainer_env({})
    assert (env.git_commit, env.digest_dir) == ("unknown", None)
    env = trainer_env({"MLOPS_GIT_COMMIT": "abc123", "MLOPS_TRAINER_DIGEST_DIR": "/tmp/d"})
    assert (env.git_commit, str(env.digest_dir)) == ("abc123", "/tmp/d")
