"""Run references, checkpoint keys and the ranks of a training job (functions of the pipeline)."""

import os

import pytest

from include.mlops.runs import RunRef
from include.mlops.settings import get_settings
from include.mlops.training.jobs import checkpoint_fingerprint, train_job_spec, training_ranks

pytestmark = pytest.mark.unit


def test_distinct_run_ids_get_distinct_folders():
    ids = ["manual__a:b", "manual__a_b", "manual__a.b", "../../etc", "..", "x" * 300]
    folders = [RunRef("d", r).safe_run_id for r in ids]
    assert len(set(folders)) == len(ids)
    for folder in folders:
        assert "/" not in folder and ".." not in folder and len(folder) <= 91


def test_checkpoints_resume_only_into_the_same_data_and_shape():
    plan = {"sha256": "a" * 64}
    params = {"batch_size": 512, "learning_rate": 0.002, "horovod_np": 2}
    same = checkpoint_fingerprint(plan, dict(params))
    assert checkpoint_fingerprint(plan, dict(params)) == same
    assert checkpoint_fingerprint({"sha256": "b" * 64}, params) != same
    assert checkpoint_fingerprint(plan, {**params, "horovod_np": 4}) != same
    assert checkpoint_fingerprint(plan, params, code="trainer:abc1234") != same
    forced = {**params, "force_retrain": True}
    assert len({checkpoint_fingerprint(plan, forced) for _ in range(3)} | {same}) == 4  # always fresh


def _fake_nvidia_smi(tmp_path, monkeypatch, lines: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.integration  # runs a program
def test_empty_horovod_np_is_one_rank_per_gpu_or_one_rank_without_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi on this machine's PATH
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_LAUNCHER", "local")
    local = get_settings()
    assert training_ranks({"horovod_np": None}, local) == (1, "no GPU here: one rank using every core")
    assert training_ranks({"horovod_np": 3}, local) == (3, "horovod_np")  # a number is used as is

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert training_ranks({}, local)[0] == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # TensorFlow's "hide every GPU"
    assert training_ranks({}, local)[0] == 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    _fake_nvidia_smi(tmp_path, monkeypatch, "GPU 0: NVIDIA H100 (UUID: a)\\nGPU 1: NVIDIA H100 (UUID: b)\\n")
    assert training_ranks({}, local) == (2, "one rank per local GPU (2)")

    monkeypatch.setenv("MLOPS_LAUNCHER", "kubernetes")
    monkeypatch.setenv("MLOPS_K8S_GPUS_PER_NODE", "4")
    k8s = get_settings()
    assert training_ranks({}, k8s) == (4, "one rank per GPU of a node (MLOPS_K8S_GPUS_PER_NODE=4)")
    monkeypatch.setenv("MLOPS_K8S_GPU_RESOURCE", "")
    assert training_ranks({}, get_settings())[0] == 1


@pytest.mark.integration  # runs a program
def test_the_training_job_runs_the_resolved_ranks_and_keys_its_checkpoints_by_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_LAUNCHER", "local")
    settings = get_settings()
    plan = {"sha256": "a" * 64, "dataset": "card_fraud", "partitions": ["2026-01-01"], "partition_date": "2026-01-01"}
    params = {"horovod_np": None, "epochs": 1, "learning_rate": 0.002}
    run = RunRef("fraud_model_pipeline", "manual__x")
    auto = train_job_spec(plan, run, params, settings, job_name="j")
    one = train_job_spec(plan, run, {**params, "horovod_np": 1}, settings, job_name="j")
    assert auto.num_proc == 1 and auto.args == one.args  # same checkpoint folder: same training
    two = train_job_spec(plan, run, {**params, "horovod_np": 2}, settings, job_name="j")
    assert two.num_proc == 2 and two.args != one.args
