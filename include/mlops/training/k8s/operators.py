"""The trainer job as the Kubernetes provider's own KubernetesPodOperator (or an MPIJob).

``TrainerJobOperator`` is a ``KubernetesPodOperator``: pod creation, scheduling and startup
timeouts, log streaming, the XCom sidecar, deferral and deletion are the provider's. This
class only decides *what* runs, at execute time, from the same ``JobSpec`` the local
launcher runs:

1. the "already trained in this DAG run" check, before any pod exists;
2. the job's argv (no shell), resources (GPUs = ranks), env, volumes and labels;
3. when ranks exceed ``gpus_per_node``: a Kubeflow ``MPIJob`` created, awaited and deleted
   through the provider's ``KubernetesHook``; its result is found in MLflow by job name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from include.mlops.airflow.links import MlflowRunLink, MlflowRunsLink
from include.mlops.settings import KubernetesSettings, Settings, get_settings
from include.mlops.training.k8s import specs

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.mlops.training.launcher import JobSpec

log = logging.getLogger(__name__)


MPI_RESULT_PATH = "/tmp/train-result.json"


class TrainerJobError(RuntimeError):
    """A trainer pod or MPIJob failed, timed out, or returned no result."""


def job_name(job: str, dag_id: str, run_id: str, try_number: int) -> str:
    """A DNS-1123 name unique to one try of one task (a retry never reuses the failed pod's)."""
    digest = hashlib.sha256(f"{dag_id}\0{run_id}\0{try_number}".encode()).hexdigest()[:10]
    return f"{job}-{digest}-t{try_number}"


class TrainerJobOperator(KubernetesPodOperator):
    """Run a trainer job (``train`` or ``evaluate``) in a pod, or as an MPIJob across nodes."""

    template_fields = (*KubernetesPodOperator.template_fields, "job_inputs")
    ui_color = "#c5e1f5"
    operator_extra_links = (*KubernetesPodOperator.operator_extra_links, MlflowRunLink(), MlflowRunsLink())

    def __init__(self, *, job: str, job_inputs: dict[str, Any], k8s: KubernetesSettings | None = None, **kwargs):
        if job not in ("train", "evaluate"):
            raise ValueError(f"unknown trainer job {job!r}")
        # Parse time: only the environment is read (the image and MLflow URL are checked at execute).
        k = k8s or KubernetesSettings.from_env(os.environ, mlflow_tracking_uri="", git_commit=None)
        self.job = job
        # Values, XComArgs, or task ids (strings) whose output is read at execute.
        self.job_inputs = job_inputs
        self._inputs: dict[str, Any] = {}
        self._mpijob: tuple[str, str] | None = None
        super().__init__(
            kubernetes_conn_id=k.conn_id,
            namespace=k.namespace,
            image=k.image or None,
            image_pull_policy=k.image_pull_policy,
            service_account_name=k.service_account,
            automount_service_account_token=False,
            security_context=specs.pod_security_context(k),
            container_security_context=specs.container_security_context(k),
            xcom_sidecar_container_security_context=specs.container_security_context(k),
            volumes=specs.volumes(k),
            volume_mounts=specs.volume_mounts(k),
            labels=specs.job_labels(job),
            get_logs=True,
            do_xcom_push=True,
            on_finish_action="delete_pod",
            on_kill_action="delete_pod",
            # A retry is a fresh pod that resumes from the checkpoint volume, never the old pod.
            durable=False,
            schedule_timeout_seconds=k.schedule_timeout_seconds,
            startup_timeout_seconds=k.startup_timeout_seconds,
            active_deadline_seconds=k.active_deadline_seconds,
            deferrable=k.deferrable,
            log_events_on_failure=True,
            **kwargs,
        )

    # -- what runs -----------------------------------------------------------------------

    def _prepare(self, context: Context) -> tuple[JobSpec | None, dict[str, Any] | None]:
        """The job to run, or the result to return without running one."""
        from include.mlops.runs import RunRef
        from include.mlops.training import jobs, steps

        settings = get_settings()
        k = settings.kubernetes
        k.check_ready()
        run = RunRef(dag_id=context["dag"].dag_id, run_id=context["run_id"])
        params = context["params"]
        ti = context["ti"]
        self._inputs = dict(self.job_inputs)  # XComArgs, resolved when the templates were rendered
        plan = self._inputs["plan"]
        name = job_name(self.job, run.dag_id, run.run_id, ti.try_number)
        if self.job == "train":
            previous = steps.reusable_training(plan, run, params, settings)
            if previous:
                return None, previous
            # MPIJob ranks run on workers without the XCom volume: rank 0 writes its result to
            # /tmp there, and the operator finds the run in MLflow by job name.
            across_nodes = jobs.training_ranks(params, settings)[0] > k.gpus_per_node
            spec = jobs.train_job_spec(
                plan, run, params, settings, job_name=name, result_path=MPI_RESULT_PATH if across_nodes else None
            )
        else:
            spec = jobs.evaluate_job_spec(plan, self._inputs["training"], run, settings)
        self.configure(spec, context, settings)
        return spec, None

    def configure(self, spec: JobSpec, context: Context, settings: Settings) -> None:
        """Shape the pod for ``spec``: argv (no shell), GPUs = ranks, requests = limits, placement."""
        k = settings.kubernetes
        ti = context["ti"]
        gpus = spec.num_proc if self.job == "train" else 0
        cpu, memory = (k.cpu_per_rank, k.memory_per_rank) if self.job == "train" else (k.eval_cpu, k.eval_memory)
        self.image = k.image
        self.name = job_name(self.job, context["dag"].dag_id, context["run_id"], ti.try_number)
        self.random_name_suffix = False
        self.cmds = spec.command()
        self.arguments = []
        self.env_vars = specs.env_vars(k)
        self.container_resources = specs.resources(cpu, memory, gpus, k, ranks=max(1, gpus))
        self.annotations = specs.job_annotations(context["dag"].dag_id, context["run_id"], self.task_id, ti.try_number)
        node_selector, tolerations, affinity = specs.gpu_placement(k) if gpus else ({}, [], None)
        self.node_selector, self.tolerations, self.affinity = node_selector, tolerations, affinity or {}

    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False):
        """The provider's pod, with the XCom sidecar's requests equal to its limits (Guaranteed QoS)."""
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        from kubernetes.client import models as k8s

        for container in pod.spec.containers:
            if container.name == specs.XCOM_SIDECAR:
                amount = {"cpu": "10m", "memory": "20Mi"}
                container.resources = k8s.V1ResourceRequirements(requests=dict(amount), limits=dict(amount))
        return pod

    def build_mpijob(self, spec: JobSpec, context: Context, settings: Settings) -> dict[str, Any]:
        """The MPIJob for ``spec`` (call ``configure`` first: it names the job)."""
        # Not the KubernetesPodOperator's marker label: its pod search must never find MPIJob pods.
        ti_labels = {k: v for k, v in self._get_ti_pod_labels(context).items() if k != "kubernetes_pod_operator"}
        labels = {**specs.job_labels(self.job), **ti_labels}
        return specs.mpijob_manifest(
            spec,
            settings.kubernetes,
            name=self.name,
            labels=labels,
            annotations=self.annotations,
        )

    def execute(self, context: Context) -> Any:
        spec, reused = self._prepare(context)
        if spec is None:
            return reused
        if specs.needs_mpijob(spec, get_settings().kubernetes):
            return self._run_mpijob(spec, context)
        log.info("trainer pod %s: %s", self.name, " ".join(self.cmds))
        return self._result(super().execute(context))

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        """Deferrable mode: the pod finished while the triggerer watched it."""
        return self._result(super().trigger_reentry(context, event))

    def _result(self, result: Any) -> dict[str, Any]:
        if not isinstance(result, dict) or not result:
            raise TrainerJobError(
                f"trainer {self.job} pod finished without a result in {self.job} XCom (/airflow/xcom/return.json)"
            )
        if self.job == "train":
            result["reused"] = False
        return result

    # -- several nodes: MPIJob -----------------------------------------------------------

    def _run_mpijob(self, spec: JobSpec, context: Context) -> dict[str, Any]:
        from include.mlops.runs import RunRef
        from include.mlops.training.steps import find_finished_training

        settings = get_settings()
        k = settings.kubernetes
        name = self.name
        body = self.build_mpijob(spec, context, settings)
        hook = self.hook
        log.info(
            "MPIJob %s: %d ranks on %d workers x %d GPUs: %s",
            name,
            spec.num_proc,
            body["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"],
            k.gpus_per_node,
            " ".join(spec.command(hostfile=specs.MPI_HOSTFILE)),
        )
        hook.create_custom_object(specs.MPI_GROUP, specs.MPI_VERSION, specs.MPI_PLURAL, body, k.namespace)
        self._mpijob = (name, k.namespace)
        try:
            state, message = self._await_mpijob(name, k)
            self._log_launcher(name, k.namespace)
            if state != "Succeeded":
                raise TrainerJobError(f"MPIJob {name} {state.lower()}: {message}")
        finally:
            self._delete_mpijob()
        run = RunRef(dag_id=context["dag"].dag_id, run_id=context["run_id"])
        found = find_finished_training(settings, run, self._inputs["plan"], job_name=name)
        if not found:
            raise TrainerJobError(f"MPIJob {name} succeeded but MLflow has no finished training run tagged with it")
        found["reused"] = False
        return found

    def _await_mpijob(self, name: str, k: KubernetesSettings) -> tuple[str, str]:
        """Poll the MPIJob's conditions until Succeeded or Failed, or until it is overdue."""
        deadline = time.monotonic() + k.schedule_timeout_seconds + k.active_deadline_seconds
        last = None
        while True:
            obj = self.hook.get_custom_object(specs.MPI_GROUP, specs.MPI_VERSION, specs.MPI_PLURAL, name, k.namespace)
            conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
            for cond in conditions:
                if cond.get("type") in ("Succeeded", "Failed"):
                    return cond["type"], f"{cond.get('reason', '')}: {cond.get('message', '')}"
            current = conditions[-1]["type"] if conditions else "Pending"
            if current != last:
                log.info("MPIJob %s is %s", name, current)
                last = current
            if time.monotonic() > deadline:
                return "TimedOut", f"not finished after {k.schedule_timeout_seconds + k.active_deadline_seconds}s"
            time.sleep(k.mpi_poll_seconds)

    def _log_launcher(self, name: str, namespace: str) -> None:
        """The launcher pod's log (every rank's output goes through horovodrun there)."""
        selector = f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=launcher"
        try:
            pods = self.hook.core_v1_client.list_namespaced_pod(namespace, label_selector=selector).items
            for pod in pods:
                resp = self.hook.get_pod_logs(pod.metadata.name, container="launcher", namespace=namespace)
                for line in resp.data.decode(errors="replace").splitlines():
                    log.info("[%s] %s", pod.metadata.name, line)
        except Exception as exc:  # the verdict stands; a missing log must not hide it
            log.warning("could not read the launcher log of MPIJob %s: %s", name, exc)

    def _delete_mpijob(self) -> None:
        if not self._mpijob:
            return
        name, namespace = self._mpijob
        from kubernetes.client import ApiException

        try:
            self.hook.delete_custom_object(specs.MPI_GROUP, specs.MPI_VERSION, specs.MPI_PLURAL, name, namespace)
            log.info("deleted MPIJob %s", name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._mpijob = None

    def on_kill(self) -> None:
        if self._mpijob:
            self._delete_mpijob()
            return
        super().on_kill()
