"""fraud_model_pipeline with MLOPS_LAUNCHER=kubernetes, end to end, against a declared stand-in.

Real: Airflow 3 (api-server, scheduler, dag-processor, triggerer, LocalExecutor), the
provider's KubernetesPodOperator (our TrainerJobOperator subclasses it; nothing is mocked),
the official ``kubernetes`` client, an MLflow tracking server with basic auth and proxied
artifacts, real ``horovodrun -np 2`` training.

Stand-in: the Kubernetes API server (``tests/k8s_standin.py``), which backs each pod with a
local process running the pod's command in the trainer virtualenv (standing in for the image).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import requests

from devstack.datagen import write_day
from devstack.embedded_stack import Stack
from include.mlops.common.dataset import partitions_sha256
from tests.conftest import DAY0, LINEAGE_TAGS, ROOT, TRAINER_VENV
from tests.k8s_standin import KubeStandIn, Node, cpu_node
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.e2e
MODEL = "fraud-detector"
ROWS = 40000
FAST = {"window_days": 2, "epochs": 3, "min_pr_auc": 0.2, "horovod_np": 2}  # empty would be GPUS_PER_NODE
# The kill and deferral tests need one rank, not two (a rank is a TensorFlow process); the retry keeps two:
# with one rank, that rank holds every row and the resumed run took longer (175 s against 103 s).
ONE_RANK = {**FAST, "horovod_np": 1}
GPUS_PER_NODE = 4  # the setting; the stand-in's GPU node has only 2, so 3 ranks cannot schedule
HEAD = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
IMAGE_COMMIT = HEAD or "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("k8s_e2e")
    home = root / "home"
    server = MlflowServer(root / "mlflow")
    server.start()
    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    lake = home / "lake"
    lake.mkdir(parents=True)
    kube = KubeStandIn(
        root / "kube",
        trainer_venv=TRAINER_VENV,
        project_root=ROOT,
        claims={"mlops-lake": lake, "mlops-checkpoints": checkpoints},
        nodes=[cpu_node(), Node(gpus=2)],
    )
    (root / "kube").mkdir()
    kube.start()
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kube.kubeconfig)))
    api.create_namespaced_secret(
        "mlops",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="mlops-mlflow"),
            string_data={"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": server.password},
        ),
    )
    env = {
        "MLOPS_LAUNCHER": "kubernetes",
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": server.password,
        # Moves of champion lock the server's backend store (see include/mlops/registry/lock.py).
        "MLOPS_REGISTRY_LOCK_URI": server.backend_store_uri,
        "MLOPS_K8S_IMAGE": f"mlops-trainer-cpu:{IMAGE_COMMIT}",
        "MLOPS_K8S_GPUS_PER_NODE": str(GPUS_PER_NODE),
        "MLOPS_K8S_CPU_PER_RANK": "1",
        "MLOPS_K8S_MEMORY_PER_RANK": "2Gi",
        "MLOPS_K8S_SCHEDULE_TIMEOUT": "15",
        "MLOPS_K8S_MPI_POLL_SECONDS": "2",
        "MLOPS_TASK_RETRY_DELAY": "3",
        **kube.connection_env(),
    }
    stack = Stack(home, trainer_venv=TRAINER_VENV, env=env, triggerer=True)
    for i in range(3):
        write_day(stack.settings.lake, DAY0 + dt.timedelta(days=i), ROWS)
    stack.start()
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=server.password)
    mlflow.set_tracking_uri(server.url)
    state = {"stack": stack, "kube": kube, "mlflow": server, "checkpoints": checkpoints, "env": env, "home": home}
    yield state
    state["stack"].stop()
    kube.stop()
    server.stop()
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ.pop(key, None)


def pods_of(kube: KubeStandIn, run_id: str, task_id: str) -> list:
    return [
        p
        for p in kube.all_pods()
        if p.manifest["metadata"].get("annotations", {}).get("mlops.airflow/run-id") == run_id
        and p.manifest["metadata"]["annotations"].get("mlops.airflow/task-id") == task_id
    ]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def registry_versions() -> list[str]:
    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name = '{MODEL}'"))


def test_mlflow_server_refuses_clients_without_credentials(cluster):
    r = requests.get(f"{cluster['mlflow'].url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert r.status_code == 401


def test_pipeline_trains_in_a_pod_and_promotes_with_lineage(cluster):
    stack, kube = cluster["stack"], cluster["kube"]
    day = DAY0 + dt.timedelta(days=2)
    t0 = time.monotonic()
    run_id = stack.trigger({"partition_date": day.isoformat(), **FAST})
    assert stack.wait(run_id, timeout=900) == "success", stack.tail()
    print(f"KPO end-to-end run: {time.monotonic() - t0:.0f} s")
    states = stack.task_states(run_id)
    assert states.pop("candidate_rejected") == states.pop("candidate_held") == "skipped"
    assert set(states.values()) == {"success"} and "champion_replaced" in states

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    tags = champion.tags
    assert [t for t in LINEAGE_TAGS if not tags.get(t)] == []
    assert tags["train.horovod_size"] == "2" and tags["airflow.run_id"] == run_id
    assert tags["code.git_commit"] == IMAGE_COMMIT  # the commit baked into the image, via its tag here
    partitions = [(DAY0 + dt.timedelta(days=i)).isoformat() for i in (1, 2)]
    files = [
        p for d in partitions for p in sorted((stack.settings.lake / "transactions" / f"date={d}").glob("*.parquet"))
    ]
    assert tags["data.sha256"] == partitions_sha256(files)
    # Artifacts went through the server (proxied), not to a path only one machine can see.
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")

    train_pods, eval_pods = pods_of(kube, run_id, "train"), pods_of(kube, run_id, "evaluate")
    assert len(train_pods) == 1 and len(eval_pods) == 1
    train_pod = train_pods[0]
    base = train_pod.manifest["spec"]["containers"][0]
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in eval_pods[0].manifest["spec"]["containers"][0]["resources"]["limits"]
    assert train_pod.argv[0].endswith("horovodrun") or train_pod.argv[0] == "horovodrun"
    assert train_pod.deleted and eval_pods[0].deleted  # on_finish_action=delete_pod
    # The password reached the process from the Secret, and appears in no manifest and no log.
    assert train_pod.env["MLFLOW_TRACKING_PASSWORD"] == cluster["mlflow"].password
    password = cluster["mlflow"].password
    assert password not in str(train_pod.manifest) and password not in str(eval_pods[0].manifest)
    log = stack.task_log(run_id, "train")
    assert "horovod rank 0/2 local_rank 0 device /CPU:0 collective Gloo" in log
    assert "horovod rank 1/2 local_rank 1" in log
    assert password not in log and password not in stack.task_log(run_id, "evaluate")
    # The "already trained" check ran before any pod: a cleared train task creates none.
    r = stack.post(
        "/api/v2/dags/fraud_model_pipeline/clearTaskInstances",
        {"dag_run_id": run_id, "task_ids": ["train"], "dry_run": False, "only_failed": False},
    )
    assert r.status_code == 200, r.text
    # The run leaves "success" once the cleared task is queued again; wait for its second try to end.
    deadline = time.time() + 600
    while True:
        ti = stack.get(f"/api/v2/dags/fraud_model_pipeline/dagRuns/{run_id}/taskInstances/train").json()
        if ti["try_number"] == 2 and ti["state"] in ("success", "failed"):
            break
        assert time.time() < deadline, stack.tail()
        time.sleep(2)
    assert stack.wait(run_id, timeout=600) == "success", stack.tail()
    assert len(pods_of(kube, run_id, "train")) == 1
    assert "reusing finished training run" in stack.task_log(run_id, "train", 2)


@pytest.fixture(scope="module")
def failing_runs(cluster):
    """Three runs that must fail, started together (the DAG runs 3 side by side): mostly waiting
    (schedule timeouts, retry delays), so together they take the time of the slowest."""
    stack = cluster["stack"]
    day = (DAY0 + dt.timedelta(days=2)).isoformat()
    before = registry_versions()
    runs = {
        "failing_pod": stack.trigger({"partition_date": day, **FAST, "batch_size": 65536}),
        "unschedulable": stack.trigger({"partition_date": day, **FAST, "horovod_np": 3}),
        "mpijob": stack.trigger({"partition_date": day, **FAST, "horovod_np": GPUS_PER_NODE + 1, "batch_size": 65536}),
    }
    return runs, before


def test_failing_pod_fails_the_task_with_its_last_lines(cluster, failing_runs):
    stack, kube = cluster["stack"], cluster["kube"]
    runs, before = failing_runs
    run_id = runs["failing_pod"]
    assert stack.wait(run_id, timeout=600) == "failed", stack.tail()
    assert stack.task_states(run_id)["train"] == "failed"
    log = stack.task_log(run_id, "train", 1)
    assert "too little training data" in log and "returned a failure" in log
    pods = pods_of(kube, run_id, "train")
    assert len({p.name for p in pods}) == 2  # the retry made a new pod
    assert all(p.exit_code not in (None, 0) and p.deleted for p in pods)
    assert registry_versions() == before


def test_unschedulable_pod_fails_after_the_schedule_timeout_with_the_reason(cluster, failing_runs):
    stack, kube = cluster["stack"], cluster["kube"]
    run_id = failing_runs[0]["unschedulable"]
    assert stack.wait(run_id, timeout=600) == "failed", stack.tail()
    log = stack.task_log(run_id, "train", 1)
    assert "Insufficient nvidia.com/gpu" in log
    assert "took too long to be scheduled" in log
    pods = pods_of(kube, run_id, "train")
    assert [p.name.rsplit("-", 1)[-1] for p in pods] == ["t1", "t2"]
    assert all(p.proc is None and p.deleted for p in pods)  # never ran, and cleaned up


def test_mpijob_failure_fails_the_task_with_the_launcher_log(cluster, failing_runs):
    stack, kube = cluster["stack"], cluster["kube"]
    ranks = GPUS_PER_NODE + 1
    run_id = failing_runs[0]["mpijob"]
    assert stack.wait(run_id, timeout=900) == "failed", stack.tail()
    log = stack.task_log(run_id, "train", 1)
    assert f"{ranks} ranks on 2 workers" in log
    assert "MPIJob" in log and "failed" in log.lower()
    assert "too little training data" in log  # from the launcher pod's log
    created = [path for method, path in kube.requests if method == "POST" and "/mpijobs" in path]
    deleted = [path for method, path in kube.requests if method == "DELETE" and "/mpijobs/" in path]
    assert len(created) == 2 and len(deleted) == 2  # each try created its own MPIJob and deleted it
    assert kube.mpijobs == {}


def test_retry_starts_a_fresh_pod_that_resumes_from_the_checkpoint(cluster):
    stack, kube = cluster["stack"], cluster["kube"]
    run_id = stack.trigger({"partition_date": (DAY0 + dt.timedelta(days=1)).isoformat(), **FAST, "epochs": 5})

    def first_checkpoint():
        pods = [p for p in pods_of(kube, run_id, "train") if p.argv]
        if not pods:
            return None
        ckpt = Path(pods[0].argv[pods[0].argv.index("--checkpoint-dir") + 1])  # this pod's, on the volume
        return (ckpt / "latest.json").exists() and pods[0]

    first = kube.wait_for(first_checkpoint, timeout=300, what="the first epoch's checkpoint")
    kube.fail_pod(first.name)  # the node under the pod goes away mid-training
    assert stack.wait(run_id, timeout=900) == "success", stack.tail()
    pods = pods_of(kube, run_id, "train")
    assert [p.name.rsplit("-", 1)[-1] for p in pods] == ["t1", "t2"]
    assert pods[0].exit_code != 0
    second_log = "\n".join(line for _, line in pods[1].lines)
    assert "resuming from" in second_log


def test_killing_the_task_deletes_its_pod(cluster):
    stack, kube = cluster["stack"], cluster["kube"]
    run_id = stack.trigger(
        {"partition_date": (DAY0 + dt.timedelta(days=1)).isoformat(), **ONE_RANK, "epochs": 200, "force_retrain": True}
    )
    pod = kube.wait_for(
        lambda: next((p for p in pods_of(kube, run_id, "train") if p.lines), None), timeout=300, what="a running pod"
    )
    r = stack.set_task_state(run_id, "train", "failed")
    assert r.status_code == 200, r.text
    kube.wait_for(lambda: pod.deleted, timeout=120, what="the pod's deletion")
    assert ("DELETE", f"/api/v1/namespaces/mlops/pods/{pod.name}?") in kube.requests
    kube.wait_for(lambda: pod.proc.poll() is not None, timeout=30, what="the pod's process to end")
    stack.wait(run_id, timeout=300)


def test_deferrable_mode_hands_the_wait_to_the_triggerer(cluster):
    """MLOPS_K8S_DEFERRABLE=true: the worker creates the pod and defers; the triggerer watches it."""
    old = cluster["stack"]
    started = old.pids()
    old.stop()  # every component it started ends too: no scheduler left on the same database
    alive = [p for p in started if running(p)]
    assert alive == [], f"processes of the stopped stack still running: {alive}"
    env = {**cluster["env"], "MLOPS_K8S_DEFERRABLE": "true"}
    stack = Stack(cluster["home"], trainer_venv=TRAINER_VENV, env=env, triggerer=True)
    cluster["stack"] = stack
    stack.start()
    kube = cluster["kube"]
    day = (DAY0 + dt.timedelta(days=2)).isoformat()
    run_id = stack.trigger({"partition_date": day, **ONE_RANK, "window_days": 1, "epochs": 1, "force_retrain": True})
    assert stack.wait(run_id, timeout=900) == "success", stack.tail()
    log = stack.task_log(run_id, "train")
    # The worker created the pod and deferred; only the triggerer's event resumes the task.
    assert "Pausing task as DEFERRED" in log, log[-3000:]
    assert "horovod rank 0/1" in log  # the pod's log still reaches the task log
    train = pods_of(kube, run_id, "train")
    assert len(train) == 1 and train[0].deleted and train[0].exit_code == 0
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "challenger")
    assert version.tags["airflow.run_id"] == run_id and version.tags["train.horovod_size"] == "1"
