"""What the Kubernetes launcher submits, checked field by field on `make render-k8s` output.

The files come from the real code path (the DAG parsed with MLOPS_LAUNCHER=kubernetes, the
train task's templates rendered, the provider's own build_pod_request_obj), run as a fresh
process the way `make render-k8s` runs it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

K8S_VERSION = "1.33.0"  # the oldest Kubernetes minor the manifests promise to run on
SECRET_SENTINEL = "s3cr3t-password-never-in-a-manifest"


def render(tmp_path, **env) -> dict:
    out = tmp_path / "k8s"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW"))}
    base.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        PYTHONPATH=str(ROOT),
        MLOPS_HOME=str(tmp_path / "home"),
        # The control plane's own MLflow credentials must never leak into a pod spec.
        MLFLOW_TRACKING_USERNAME="ops",
        MLFLOW_TRACKING_PASSWORD=SECRET_SENTINEL,
        **env,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "include.mlops.training.k8s.render", "--out", str(out)],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    texts = {name: (out / f"train-{name}.yaml").read_text() for name in ("pod", "mpijob")}
    return {"texts": texts, **{name: yaml.safe_load(text) for name, text in texts.items()}, "stderr": proc.stderr}


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return render(tmp_path_factory.mktemp("render_default"))


def base_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def test_both_files_validate_against_the_kubernetes_schema(default):
    kubernetes_validate.validate(default["pod"], K8S_VERSION, strict=True)
    mpijob = default["mpijob"]
    assert mpijob["apiVersion"] == "kubeflow.org/v2beta1" and mpijob["kind"] == "MPIJob"
    for role in ("Launcher", "Worker"):
        template = mpijob["spec"]["mpiReplicaSpecs"][role]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": role.lower()}, **template}
        pod["metadata"] = {**template.get("metadata", {}), "name": role.lower()}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_validation_is_live():
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [{"nam": "x"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_pod_requests_one_gpu_per_rank_with_requests_equal_to_limits(default):
    pod = default["pod"]
    base = base_container(pod)
    ranks = int(base["command"][base["command"].index("-np") + 1])
    assert ranks == 8  # horovod_np empty: one rank per GPU of a node (MLOPS_K8S_GPUS_PER_NODE, 8)
    assert base["resources"]["limits"]["nvidia.com/gpu"] == str(ranks)
    for container in pod["spec"]["containers"]:  # Guaranteed QoS: every container
        assert container["resources"]["requests"] == container["resources"]["limits"], container["name"]
    assert base["resources"]["limits"]["cpu"] == "32" and base["resources"]["limits"]["memory"] == "128Gi"


def test_pod_is_argv_without_a_shell_and_paths_resolve_inside_the_image(default):
    base = base_container(default["pod"])
    argv = base["command"] + base.get("args", [])
    assert argv[:2] == ["horovodrun", "-np"] and "sh" not in argv[:3] and "-c" not in argv[:3]
    value = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert value["--dataset-config"] == "/opt/mlops/datasets/card_fraud.yaml"
    assert value["--checkpoint-dir"].startswith("/mnt/checkpoints/fraud_model_pipeline/")
    assert value["--result-path"] == "/airflow/xcom/return.json"
    assert "--bind-cores" not in argv  # the pod's CPU limit does that job
    mounts = {m["mountPath"]: m for m in base["volumeMounts"]}
    assert mounts["/mnt/lake"].get("readOnly") is True and "/mnt/checkpoints" in mounts and "/tmp" in mounts
    assert "/airflow/xcom" in mounts
    env = {e["name"]: e for e in base["env"]}
    assert env["MLOPS_LAKE"]["value"] == "/mnt/lake"
    assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http")


def test_pod_security_and_shared_memory(default):
    spec = default["pod"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["serviceAccountName"] == "mlops-trainer" and spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], container["name"]
        assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True, container["name"]
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert any(m["mountPath"] == "/dev/shm" for m in base_container(default["pod"])["volumeMounts"])
    assert spec["activeDeadlineSeconds"] == 6 * 3600 and spec["restartPolicy"] == "Never"


def test_pod_placement_and_identity(default):
    pod = default["pod"]
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    labels, notes = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["dag_id"] == "fraud_model_pipeline" and labels["task_id"] == "train" and labels["try_number"] == "1"
    assert "run_id" in labels
    assert notes["mlops.airflow/run-id"] == "manual__2026-01-03T00:00:00+00:00"  # verbatim, unlike the label
    assert notes["mlops.airflow/dag-id"] == "fraud_model_pipeline" and notes["mlops.airflow/try-number"] == "1"
    assert pod["metadata"]["name"].startswith("train-") and pod["metadata"]["name"].endswith("-t1")


def test_no_secret_value_anywhere(default):
    for text in default["texts"].values():
        assert SECRET_SENTINEL not in text
    env = {e["name"]: e for e in base_container(default["pod"])["env"]}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "value" not in env[key]
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "mlops-mlflow", "key": key}


def test_image_is_pinned_to_the_commit(default):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert base_container(default["pod"])["image"] == f"mlops-trainer-gpu:{head}"


def test_mpijob_spreads_ranks_over_nodes_with_the_same_pod_shape(default):
    mpijob, pod = default["mpijob"], default["pod"]
    spec = mpijob["spec"]
    launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    worker = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    argv = launcher["containers"][0]["command"]
    ranks = int(argv[argv.index("-np") + 1])
    assert ranks > 8 and argv[argv.index("--hostfile") + 1] == "/etc/mpi/hostfile"
    assert spec["slotsPerWorker"] == 8 and spec["mpiReplicaSpecs"]["Worker"]["replicas"] == math.ceil(ranks / 8)
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in launcher["containers"][0]["resources"]["limits"]
    assert worker["nodeSelector"] == pod["spec"]["nodeSelector"]
    assert spec["runPolicy"]["backoffLimit"] == 0 and spec["runPolicy"]["activeDeadlineSeconds"] == 6 * 3600
    pod_base = base_container(pod)
    for template in (launcher, worker):
        c = template["containers"][0]
        assert c["image"] == pod_base["image"] and c["securityContext"] == pod_base["securityContext"]
        assert template["securityContext"] == pod["spec"]["securityContext"]
        assert {e["name"] for e in c["env"]} == {e["name"] for e in pod_base["env"]}
        assert {v["name"] for v in template["volumes"]} == {v["name"] for v in pod["spec"]["volumes"]} - {"xcom"}
    # No XCom volume on MPIJob ranks: the result goes to /tmp and the run is found in MLflow.
    assert argv[argv.index("--result-path") + 1].startswith("/tmp/")
    assert "kubernetes_pod_operator" not in mpijob["metadata"]["labels"]


def test_settings_shape_the_pod(tmp_path):
    tolerations = [{"key": "gpu-pool", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}]}
                ]
            }
        }
    }
    r = render(
        tmp_path,
        MLOPS_K8S_IMAGE="trainer@sha256:" + "a" * 64,
        MLOPS_K8S_NODE_SELECTOR=json.dumps({"pool": "a100"}),
        MLOPS_K8S_TOLERATIONS=json.dumps(tolerations),
        MLOPS_K8S_AFFINITY=json.dumps(affinity),
        MLOPS_K8S_GPUS_PER_NODE="4",
        MLOPS_K8S_CPU_PER_RANK="3",
        MLOPS_K8S_MEMORY_PER_RANK="12Gi",
        MLOPS_K8S_NAMESPACE="ml-team",
        MLOPS_K8S_SERVICE_ACCOUNT="team-trainer",
    )
    pod = r["pod"]
    assert pod["metadata"]["namespace"] == "ml-team" and pod["spec"]["serviceAccountName"] == "team-trainer"
    assert pod["spec"]["nodeSelector"] == {"pool": "a100"}
    assert pod["spec"]["tolerations"] == tolerations
    assert pod["spec"]["affinity"] == affinity
    base = base_container(pod)
    assert base["image"] == "trainer@sha256:" + "a" * 64
    # horovod_np empty: one rank per GPU of a node, each with its CPU and memory.
    assert base["resources"]["limits"] == {"cpu": "12", "memory": "48Gi", "nvidia.com/gpu": "4"}
    assert r["mpijob"]["spec"]["slotsPerWorker"] == 4


def test_cpu_only_pods_request_no_gpu(tmp_path):
    r = render(tmp_path, MLOPS_K8S_GPU_RESOURCE="", MLOPS_K8S_IMAGE="mlops-trainer-cpu:abcdef1")
    for container in r["pod"]["spec"]["containers"]:
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    base = base_container(r["pod"])
    assert base["command"][base["command"].index("-np") + 1] == "1"  # no GPU: one rank
    assert not r["pod"]["spec"].get("nodeSelector") and not r["pod"]["spec"].get("tolerations")
    worker = r["mpijob"]["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert set(worker["resources"]["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_K8S_IMAGE": "trainer:latest"}, "MLOPS_K8S_IMAGE must be pinned"),
        ({"MLOPS_K8S_NODE_SELECTOR": "{pool: a100"}, "MLOPS_K8S_NODE_SELECTOR is not valid JSON"),
        ({"MLOPS_K8S_TOLERATIONS": "{}"}, "MLOPS_K8S_TOLERATIONS must be a JSON list"),
        ({"MLOPS_K8S_GPUS_PER_NODE": "zero"}, "MLOPS_K8S_GPUS_PER_NODE must be an integer"),
        ({"MLOPS_K8S_SCHEDULE_TIMEOUT": "0"}, "MLOPS_K8S_SCHEDULE_TIMEOUT must be >= 1"),
        ({"MLOPS_K8S_MPI_POLL_SECONDS": "soon"}, "MLOPS_K8S_MPI_POLL_SECONDS must be a number"),
        ({"MLOPS_K8S_DEFERRABLE": "yes"}, "MLOPS_K8S_DEFERRABLE must be true or false"),
    ],
)
def test_bad_settings_give_one_line(tmp_path, env, message):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW"))}
    proc = subprocess.run(
        [sys.executable, "-m", "include.mlops.training.k8s.render", "--out", str(tmp_path)],
        env={**base, "PYTHONPATH": str(ROOT), "AIRFLOW_HOME": str(tmp_path / "af"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_hostile_strings_stay_literal_argv_elements(tmp_path, monkeypatch):
    """A run id or dataset value full of shell syntax is one argv element, never interpreted."""
    from include.mlops.runs import RunRef
    from include.mlops.settings import get_settings
    from include.mlops.training import jobs

    monkeypatch.setenv("MLOPS_LAUNCHER", "kubernetes")
    monkeypatch.setenv("MLOPS_K8S_IMAGE", "trainer:abcdef1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    from include.mlops.training.k8s.operators import TrainerJobOperator

    hostile = "manual__$(touch /tmp/pwned); `id` && echo 'x' \"y\" | cat > /etc/passwd"
    settings = get_settings()
    plan = {"dataset": "card_fraud", "partition_date": "2026-01-03", "partitions": ["2026-01-03"], "sha256": "0" * 64}
    params = {"horovod_np": 2, "epochs": 1, "batch_size": 64, "learning_rate": 0.01}
    spec = jobs.train_job_spec(plan, RunRef("d", hostile), params, settings, job_name="j")
    op = TrainerJobOperator(task_id="train", job="train", job_inputs={"plan": plan})
    ti = types.SimpleNamespace(dag_id="d", task_id="train", run_id=hostile, try_number=3, map_index=-1)
    context = {"ti": ti, "run_id": hostile, "dag": types.SimpleNamespace(dag_id="d")}
    op.configure(spec, context, settings)
    pod = op.build_pod_request_obj(context, dry_run=True)
    argv = pod.spec.containers[0].command + (pod.spec.containers[0].args or [])
    assert f"airflow.run_id={hostile}" in argv
    assert argv == spec.command()
    assert pod.metadata.annotations["mlops.airflow/run-id"] == hostile
    assert pod.metadata.name.endswith("-t3")
