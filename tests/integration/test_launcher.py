import pytest

from include.mlops.training.launcher import JobSpec, TrainerJobError, run_local

pytestmark = pytest.mark.integration


def test_train_command_is_horovodrun_with_gloo():
    spec = JobSpec(job="train", num_proc=3, args=("--epochs", "2"))
    assert spec.command() == [
        "horovodrun", "-np", "3", "-H", "localhost:3", "--gloo",
        "python", "-m", "include.mlops.trainer", "train", "--epochs", "2",
    ]  # fmt: skip


def test_evaluate_is_a_single_process():
    assert JobSpec(job="evaluate", args=("--x",)).command()[:4] == ["python", "-m", "include.mlops.trainer", "evaluate"]


@pytest.mark.parametrize(
    ("kwargs", "msg"), [({"job": "serve"}, "unknown trainer job"), ({"job": "train", "num_proc": 0}, "num_proc")]
)
def test_bad_spec(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        JobSpec(args=(), **kwargs)


def test_missing_trainer_env_is_named(tmp_path):
    with pytest.raises(TrainerJobError, match="trainer environment not found"):
        run_local(
            JobSpec(job="evaluate", args=()),
            trainer_venv=tmp_path / "nope",
            project_root=tmp_path,
            result_path=tmp_path / "r.json",
            extra_env={},
        )


def fake_venv(tmp_path, script):
    """A stand-in trainer virtualenv whose `python` is a shell script (to test the launcher)."""
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    py = bin_ / "python"
    py.write_text("#!/bin/sh\n" + script)
    py.chmod(0o755)
    return tmp_path / "venv"


def test_failure_raises_with_output_tail(tmp_path):
    venv = fake_venv(tmp_path, 'echo "rank 0 says: boom"; exit 3\n')
    with pytest.raises(TrainerJobError, match=r"(?s)exited with 3.*rank 0 says: boom"):
        run_local(
            JobSpec(job="evaluate", args=()),
            trainer_venv=venv,
            project_root=tmp_path,
            result_path=tmp_path / "r.json",
            extra_env={},
        )


def test_result_by_reference_and_env(tmp_path):
    out = tmp_path / "r.json"
    venv = fake_venv(tmp_path, f'printf \'{{"lake": "%s", "venv": "%s"}}\' "$MLOPS_LAKE" "$VIRTUAL_ENV" > {out}\n')
    result = run_local(
        JobSpec(job="evaluate", args=()),
        trainer_venv=venv,
        project_root=tmp_path,
        result_path=out,
        extra_env={"MLOPS_LAKE": "/data/lake"},
    )
    assert result == {"lake": "/data/lake", "venv": str(venv)}


def test_success_without_result_is_an_error(tmp_path):
    venv = fake_venv(tmp_path, "exit 0\n")
    out = tmp_path / "r.json"
    out.write_text("{}")  # a stale result from an earlier attempt must not be taken
    with pytest.raises(TrainerJobError, match="wrote no result"):
        run_local(
            JobSpec(job="evaluate", args=()), trainer_venv=venv, project_root=tmp_path, result_path=out, extra_env={}
        )
