"""``make render-k8s``: exactly what the Kubernetes launcher would submit, written for review.

Goes through the real code path: the DAG is parsed with ``MLOPS_LAUNCHER=kubernetes``, the
``train`` task (a ``TrainerJobOperator``) has its templates rendered against a sample run
(its upstream results stand in for XComs), is configured from the same ``JobSpec`` a run
builds, and the provider's own ``build_pod_request_obj`` makes the pod. The MPIJob is the one
the same operator creates when the ranks exceed ``gpus_per_node``.

    python -m include.mlops.training.k8s.render [--out .local/k8s] [--ranks N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAG_ID = "fraud_model_pipeline"
RENDER_MLFLOW_URI = "http://mlflow.mlops.svc:5000"
HEADER = """\
# {what}, rendered by `make render-k8s` (include/mlops/training/k8s/render.py) from the default
# settings{overrides} for a sample run of {dag_id} ({partition_date}, {ranks} ranks).
# Image: {image}. MLflow credentials come from Secret {secret!r} (secretKeyRef), never inline.
"""


@dataclass
class _RenderTaskInstance:
    """The task instance of a sample run: serves the upstream tasks' results as XComs."""

    dag_id: str
    task_id: str
    run_id: str
    xcoms: dict[str, Any]
    try_number: int = 1
    map_index: int = -1
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms[task_ids]

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _sample_plan(partition_date: dt.date, window_days: int) -> dict[str, Any]:
    days = [partition_date - dt.timedelta(days=window_days - 1 - i) for i in range(window_days)]
    return {
        "dataset": "card_fraud",
        "partition_date": partition_date.isoformat(),
        "partitions": [d.isoformat() for d in days],
        "interval_start": f"{days[0].isoformat()}T00:00:00+00:00",
        "interval_end": f"{(days[-1] + dt.timedelta(days=1)).isoformat()}T00:00:00+00:00",
        "sha256": "0" * 64,
        "files": window_days,
    }


def render(out_dir: Path, ranks: int | None = None, partition_date: dt.date = dt.date(2026, 1, 3)) -> dict[str, Path]:
    import yaml
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    from include.mlops.runs import RunRef
    from include.mlops.settings import PROJECT_ROOT, get_settings, git_commit
    from include.mlops.training.jobs import train_job_spec, training_ranks

    os.environ["MLOPS_LAUNCHER"] = "kubernetes"
    overrides = sorted(k for k in os.environ if k.startswith("MLOPS_K8S_"))
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith("http"):
        os.environ.setdefault("MLOPS_K8S_MLFLOW_TRACKING_URI", RENDER_MLFLOW_URI)
    os.environ.setdefault("MLOPS_GIT_COMMIT", git_commit(PROJECT_ROOT))
    settings = get_settings()
    k = settings.kubernetes
    k.check_ready()

    bag = DagBag(dag_folder=str(settings.project_root / "dags"))
    if bag.import_errors:
        raise SystemExit(f"the DAG does not parse: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    op = dag.task_dict["train"]
    params = {name: dag.params[name] for name in dag.params}
    plan = _sample_plan(partition_date, int(params["window_days"]))
    run_id = f"manual__{partition_date.isoformat()}T00:00:00+00:00"
    ti = _RenderTaskInstance(DAG_ID, "train", run_id, {"plan": plan, "validate": {"success": True}})
    context: dict[str, Any] = {"ti": ti, "task_instance": ti, "run_id": run_id, "dag": dag, "params": params}
    op.render_template_fields(context)
    run = RunRef(DAG_ID, run_id)
    api = ApiClient()
    written = {}
    extra = f" (overridden: {', '.join(overrides)})" if overrides else ""

    def header(what: str, ranks: int) -> str:
        return HEADER.format(
            what=what,
            overrides=extra,
            dag_id=DAG_ID,
            partition_date=partition_date,
            ranks=ranks,
            image=k.image,
            secret=k.mlflow_secret,
        )

    pod_ranks = ranks or min(training_ranks(params, settings)[0], k.gpus_per_node)
    pod_params = {**params, "horovod_np": pod_ranks}
    spec = train_job_spec(plan, run, pod_params, settings, job_name="render")
    op.configure(spec, context, settings)
    pod = api.sanitize_for_serialization(op.build_pod_request_obj(context, dry_run=True))
    header_text = header("The training pod (KubernetesPodOperator)", pod_ranks)
    written["pod"] = _write(out_dir / "train-pod.yaml", header_text, pod, yaml)

    mpi_ranks = max(2 * k.gpus_per_node, (ranks or 0) if (ranks or 0) > k.gpus_per_node else 0)
    from include.mlops.training.k8s.operators import MPI_RESULT_PATH

    mpi_spec = train_job_spec(
        plan, run, {**params, "horovod_np": mpi_ranks}, settings, job_name="render", result_path=MPI_RESULT_PATH
    )
    op.configure(mpi_spec, context, settings)
    mpijob = op.build_mpijob(mpi_spec, context, settings)
    header_text = header("The multi-node training MPIJob (kubeflow.org/v2beta1)", mpi_ranks)
    written["mpijob"] = _write(out_dir / "train-mpijob.yaml", header_text, mpijob, yaml)
    return written


def _write(path: Path, header: str, obj: dict[str, Any], yaml: Any) -> Path:
    from include.mlops.common.files import write_text_atomic

    write_text_atomic(path, header + yaml.safe_dump(obj, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.mlops.training.k8s.render", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=None, help="default: $MLOPS_HOME/k8s (.local/k8s)")
    parser.add_argument(
        "--ranks",
        type=int,
        default=None,
        help="ranks of the pod (default: the DAG's horovod_np; empty there: MLOPS_K8S_GPUS_PER_NODE)",
    )
    ns = parser.parse_args(argv)
    from include.mlops.settings import SettingsError, get_settings

    try:
        out = ns.out or get_settings().home / "k8s"
        written = render(out, ns.ranks)
    except SettingsError as exc:
        print(f"render-k8s: {exc}", file=sys.stderr)
        return 2
    for what, path in written.items():
        print(f"{what:7s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
