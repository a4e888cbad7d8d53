"""What a trainer job asks of Kubernetes: pod pieces and the MPIJob, built from one JobSpec.

Pure functions of (JobSpec, KubernetesSettings): no cluster, no Airflow context. The
operator (``include.mlops.training.k8s.operators``) hands these pieces to the provider's
KubernetesPodOperator, or creates the MPIJob through the provider's KubernetesHook.

Every pod of a job (the single-node pod, the MPIJob launcher and workers) gets the same
image, restricted security context, volumes, environment and MLflow credentials
(``secretKeyRef`` to a Secret, never a value).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kubernetes.client import models as k8s

if TYPE_CHECKING:
    from include.mlops.settings import KubernetesSettings
    from include.mlops.training.launcher import JobSpec

MPI_GROUP, MPI_VERSION, MPI_PLURAL = "kubeflow.org", "v2beta1", "mpijobs"
MPI_HOSTFILE = "/etc/mpi/hostfile"
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
APP_LABEL = "mlops-trainer"
XCOM_SIDECAR = "airflow-xcom-sidecar"  # the provider's name for it


def pod_security_context(k: KubernetesSettings) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=k.run_as_user,
        run_as_group=k.run_as_user,
        fs_group=k.run_as_user,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context(k: KubernetesSettings) -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=k.run_as_user,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def volumes(k: KubernetesSettings) -> list[k8s.V1Volume]:
    return [
        k8s.V1Volume(
            name="lake",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=k.lake_pvc, read_only=True),
        ),
        k8s.V1Volume(
            name="checkpoints",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=k.checkpoint_pvc),
        ),
        # NCCL and Gloo move tensors through shared memory: the runtime's 64 MiB default is too small.
        k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=k.shm_size)),
        # Read-only root filesystem: TensorFlow, MLflow and Keras write temporary files here.
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="8Gi")),
    ]


def volume_mounts(k: KubernetesSettings) -> list[k8s.V1VolumeMount]:
    return [
        k8s.V1VolumeMount(name="lake", mount_path=k.lake_path, read_only=True),
        k8s.V1VolumeMount(name="checkpoints", mount_path=k.checkpoint_path),
        k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
    ]


def env_vars(k: KubernetesSettings) -> list[k8s.V1EnvVar]:
    plain = {
        "MLOPS_LAKE": k.lake_path,
        "MLFLOW_TRACKING_URI": k.mlflow_tracking_uri,
        "HOME": "/tmp",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    secret = [
        k8s.V1EnvVar(
            name=key,
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=k.mlflow_secret, key=key)),
        )
        for key in MLFLOW_SECRET_KEYS
    ]
    return [k8s.V1EnvVar(name=name, value=value) for name, value in plain.items()] + secret


def resources(cpu: str, memory: str, gpus: int, k: KubernetesSettings, ranks: int = 1) -> k8s.V1ResourceRequirements:
    """Requests equal limits (Guaranteed QoS): a rank never loses its cores to a neighbour."""
    amount = {"cpu": _times(cpu, ranks), "memory": _times(memory, ranks)}
    if gpus and k.gpu_resource:  # an empty gpu_resource: CPU-only pods (the CPU trainer image)
        amount[k.gpu_resource] = str(gpus)
    return k8s.V1ResourceRequirements(requests=dict(amount), limits=dict(amount))


def _times(quantity: str, n: int) -> str:
    """``"4"`` x 2 -> ``"8"``; ``"16Gi"`` x 2 -> ``"32Gi"``; ``"500m"`` x 2 -> ``"1000m"``."""
    if n == 1:
        return quantity
    digits = len(quantity) - len(quantity.lstrip("0123456789."))
    number, unit = quantity[:digits], quantity[digits:]
    value = float(number) * n
    return f"{int(value) if value.is_integer() else value}{unit}"


def job_labels(job: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_LABEL, "app.kubernetes.io/component": job}


def job_annotations(dag_id: str, run_id: str, task_id: str, try_number: int) -> dict[str, str]:
    """The exact Airflow identifiers (labels must be sanitised; annotations keep them verbatim)."""
    return {
        "mlops.airflow/dag-id": dag_id,
        "mlops.airflow/run-id": run_id,
        "mlops.airflow/task-id": task_id,
        "mlops.airflow/try-number": str(try_number),
    }


def needs_mpijob(spec: JobSpec, k: KubernetesSettings) -> bool:
    """One pod holds at most one node's GPUs; more ranks need an MPIJob across nodes."""
    return spec.job == "train" and spec.num_proc > k.gpus_per_node


def _pod_template(
    container: k8s.V1Container, k: KubernetesSettings, labels: dict[str, str], *, gpu_node: bool
) -> k8s.V1PodTemplateSpec:
    node_selector, tolerations, affinity = gpu_placement(k) if gpu_node else ({}, [], None)
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels),
        spec=k8s.V1PodSpec(
            containers=[container],
            service_account_name=k.service_account,
            automount_service_account_token=False,
            security_context=pod_security_context(k),
            volumes=volumes(k),
            node_selector=node_selector or None,
            tolerations=tolerations or None,
            affinity=affinity,
            restart_policy="Never",
        ),
    )


def gpu_placement(k: KubernetesSettings) -> tuple[dict[str, str], list[k8s.V1Toleration], k8s.V1Affinity | None]:
    """Node selector, tolerations and affinity of pods that hold GPUs (the settings' JSON as models)."""
    from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import (
        convert_affinity,
        convert_toleration,
    )

    tolerations = [convert_toleration(t) for t in k.tolerations]
    return dict(k.node_selector), tolerations, convert_affinity(k.affinity) if k.affinity else None


def mpijob_manifest(
    spec: JobSpec,
    k: KubernetesSettings,
    *,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> dict[str, Any]:
    """A Kubeflow MPI Operator ``MPIJob`` (v2beta1) running ``spec`` on ``ceil(ranks / gpus_per_node)`` nodes.

    The launcher (no GPU) runs the same horovodrun command with ``--hostfile`` (written by the
    operator); each worker runs sshd and holds one node's GPUs (``slotsPerWorker``).
    """
    from kubernetes.client import ApiClient

    workers = math.ceil(spec.num_proc / k.gpus_per_node)
    common = {
        "image": k.image,
        "image_pull_policy": k.image_pull_policy,
        "env": env_vars(k),
        "volume_mounts": volume_mounts(k),
        "security_context": container_security_context(k),
        "working_dir": k.image_root,
    }
    launcher = k8s.V1Container(
        name="launcher",
        command=spec.command(hostfile=MPI_HOSTFILE),
        resources=resources("1", "2Gi", 0, k),
        **common,
    )
    worker = k8s.V1Container(
        name="worker",
        command=list(k.mpi_worker_command),
        resources=resources(k.cpu_per_rank, k.memory_per_rank, k.gpus_per_node, k, ranks=k.gpus_per_node),
        **common,
    )
    body = {
        "apiVersion": f"{MPI_GROUP}/{MPI_VERSION}",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": k.namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "slotsPerWorker": k.gpus_per_node,
            "sshAuthMountPath": k.mpi_ssh_auth_mount_path,
            "mpiImplementation": "OpenMPI",
            "runPolicy": {
                "cleanPodPolicy": "Running",
                "backoffLimit": 0,  # Airflow's retry decides; it starts a fresh MPIJob
                "activeDeadlineSeconds": k.active_deadline_seconds,
            },
            "mpiReplicaSpecs": {
                "Launcher": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": _pod_template(launcher, k, labels, gpu_node=False),
                },
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "Never",
                    "template": _pod_template(worker, k, labels, gpu_node=True),
                },
            },
        },
    }
    return ApiClient().sanitize_for_serialization(body)
