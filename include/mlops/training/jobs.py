"""Trainer jobs of a pipeline run: how many ranks, where paths are as the trainer sees them, the job specs.

One ``JobSpec`` per job (``train``, ``evaluate``), whichever launcher runs it: the local launcher
(``run_trainer_job_locally``, ``horovodrun`` on this machine) or a Kubernetes pod / MPIJob
(``training.k8s``). Rank choice (``training_ranks``) and checkpoint keys live here too, because a
spec is built from them.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.mlops.settings import Settings, git_commit

if TYPE_CHECKING:
    from include.mlops.runs import RunRef
    from include.mlops.training.launcher import JobSpec

log = logging.getLogger(__name__)


# Where the trainer writes its result inside a pod: the XCom sidecar's shared volume.
POD_RESULT_PATH = "/airflow/xcom/return.json"


@dataclass(frozen=True)
class JobPaths:
    """Paths as the trainer process sees them: the control plane's disk, or the pod's mounts."""

    dataset_dir: str
    checkpoint_dir: str
    result_path: str


def job_paths(settings: Settings, run: RunRef, job: str) -> JobPaths:
    if settings.launcher == "kubernetes":
        k = settings.kubernetes
        return JobPaths(
            dataset_dir=k.dataset_dir,
            checkpoint_dir=f"{k.checkpoint_path}/{run.dag_id}/{run.safe_run_id}",
            result_path=POD_RESULT_PATH,
        )
    out = settings.runs_dir / run.dag_id / run.safe_run_id
    return JobPaths(str(settings.datasets_dir), str(out / "checkpoints"), str(out / f"{job}.json"))


def checkpoint_fingerprint(plan_: dict[str, Any], params: dict[str, Any], code: str = "") -> str:
    """Checkpoints resume only into a run on the same bytes, code and shape of training."""
    import hashlib
    import json
    import os

    keys = {k: params.get(k) for k in ("batch_size", "learning_rate", "horovod_np")}
    blob = json.dumps({"sha256": plan_["sha256"], "code": code, **keys}, sort_keys=True)
    if params.get("force_retrain"):  # a forced retrain never resumes: fresh state every time
        blob += f"/forced/{os.urandom(8).hex()}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def code_version(settings: Settings) -> str:
    """What code a job runs: the trainer image in a pod, the checkout's commit locally."""
    return settings.kubernetes.image if settings.launcher == "kubernetes" else git_commit(settings.project_root)


def local_gpu_count() -> int:
    """GPUs the local trainer would get: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``."""
    import os
    import shutil

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def training_ranks(params: dict[str, Any], settings: Settings) -> tuple[int, str]:
    """The Horovod ranks of a run, and why: ``horovod_np`` when set, else one per GPU.

    Empty ``horovod_np`` means "what the hardware suits": on Kubernetes one pod with
    ``MLOPS_K8S_GPUS_PER_NODE`` GPUs (a node's worth); locally one rank per GPU; and without GPUs
    (a machine without any, CPU-only pods) one rank using every core, because ranks sharing a CPU only add allreduce
    (measured on 2 cores: one rank trains faster than two, docs/benchmarks.md).
    """
    if params.get("horovod_np"):
        return int(params["horovod_np"]), "horovod_np"
    if settings.launcher == "kubernetes":
        if not settings.kubernetes.gpu_resource:
            return 1, "CPU-only pods (MLOPS_K8S_GPU_RESOURCE empty): one rank"
        n = settings.kubernetes.gpus_per_node
        return n, f"one rank per GPU of a node (MLOPS_K8S_GPUS_PER_NODE={n})"
    gpus = local_gpu_count()
    if gpus:
        return gpus, f"one rank per local GPU ({gpus})"
    return 1, "no GPU here: one rank using every core"


def train_job_spec(
    plan_: dict[str, Any],
    run: RunRef,
    params: dict[str, Any],
    settings: Settings,
    *,
    job_name: str,
    result_path: str | None = None,
) -> JobSpec:
    """The training job for this run; the same spec for every launcher."""
    from include.mlops.training.launcher import JobSpec

    paths = job_paths(settings, run, "train")
    ranks, why = training_ranks(params, settings)
    log.info("training with %d Horovod rank(s): %s", ranks, why)
    params = {**params, "horovod_np": ranks}
    return JobSpec(
        job="train",
        num_proc=ranks,
        args=(
            "--dataset-config",
            f"{paths.dataset_dir}/{plan_['dataset']}.yaml",
            "--partitions",
            ",".join(plan_["partitions"]),
            "--epochs",
            str(params["epochs"]),
            "--patience",
            str(params.get("patience", 3)),
            *(["--batch-size", str(params["batch_size"])] if params.get("batch_size") else []),
            "--learning-rate",
            str(params["learning_rate"]),
            "--checkpoint-dir",
            f"{paths.checkpoint_dir}/{checkpoint_fingerprint(plan_, params, code_version(settings))}",
            # Local ranks share one machine: pin each to its own cores (2x throughput on 2
            # cores, measured); in a pod the CPU limit plays that role.
            *(["--bind-cores"] if settings.launcher == "local" else []),
            "--result-path",
            result_path or paths.result_path,
            "--run-name",
            f"{plan_['dataset']}-{plan_['partition_date']}",
            "--tag",
            f"airflow.dag_id={run.dag_id}",
            "--tag",
            f"airflow.run_id={run.run_id}",
            "--tag",
            f"data.sha256={plan_['sha256']}",
            "--tag",
            f"data.partitions={','.join(plan_['partitions'])}",
            "--tag",
            f"mlops.job_name={job_name}",
        ),
    )


def evaluate_job_spec(plan_: dict[str, Any], training: dict[str, Any], run: RunRef, settings: Settings) -> JobSpec:
    from include.mlops.training.launcher import JobSpec

    paths = job_paths(settings, run, "evaluation")
    return JobSpec(
        job="evaluate",
        args=(
            "--dataset-config",
            f"{paths.dataset_dir}/{plan_['dataset']}.yaml",
            "--partitions",
            ",".join(plan_.get("holdout_partitions") or plan_["partitions"]),
            "--candidate-uri",
            training["model_uri"],
            "--candidate-run-id",
            training["run_id"],
            "--result-path",
            paths.result_path,
        ),
    )


def run_trainer_job_locally(spec: JobSpec, settings: Settings) -> dict[str, Any]:
    """Run a trainer job with the local launcher; returns the job's result file."""
    from pathlib import Path

    from include.mlops.training.launcher import run_local

    if settings.launcher != "local":
        raise RuntimeError(
            f"MLOPS_LAUNCHER={settings.launcher} runs trainer jobs as Kubernetes pods: the DAG must be parsed "
            "with the same setting (the scheduler and dag-processor read it too)"
        )
    result_path = Path(spec.args[spec.args.index("--result-path") + 1])
    return run_local(
        spec,
        trainer_venv=settings.trainer_venv,
        project_root=settings.project_root,
        result_path=result_path,
        extra_env={**settings.trainer_env(), "MLOPS_GIT_COMMIT": git_commit(settings.project_root)},
    )
