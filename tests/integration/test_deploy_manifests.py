"""deploy/: the cluster manifests of the trainer side, checked offline.

Every core manifest validates strictly against the Kubernetes OpenAPI schema of a pinned version
(kubernetes-validate), passes checkov's Kubernetes checks, and grants no more than the launcher
uses. No cluster is needed (nor available on these machines).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from tests.lint_tools import lint_env, lint_tool

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33"  # oldest minor the manifests promise to apply to (namespace.yaml pins PSA to it)
NAMESPACE = "mlops"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
SECRET_TEMPLATE = DEPLOY / "secret-mlflow.yaml"
HELM_VALUES = DEPLOY / "helm" / "airflow-values.yaml"

# What the provider (cncf-kubernetes 10.25: KubernetesPodOperator sync and deferrable, do_xcom_push)
# and include/mlops/training/k8s/operators.py (MPIJob) call; see the comments in the Role files.
LAUNCHER_RULES = {
    ("", "pods"): {"create", "get", "list", "patch", "delete"},
    ("", "pods/log"): {"get"},
    ("", "pods/exec"): {"create", "get"},
    ("", "events"): {"list", "watch"},
    ("kubeflow.org", "mpijobs"): {"create", "get", "delete"},
}
TRIGGER_RULES = {
    ("", "pods"): {"get", "delete"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"list", "watch"},
}
AIRFLOW_SUBJECTS = {
    "mlops-launcher": ("airflow-worker", "airflow"),
    "mlops-launcher-trigger": ("airflow-triggerer", "airflow"),
}


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_documents() -> list[dict]:
    return [d for p in MANIFESTS for d in documents(p)]


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in all_documents() if d["kind"] == kind}


def rules_of(role: dict) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


# -- schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path):
    docs = documents(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    """The check above is live: a misspelt field fails, as it would against a real API server."""
    role = by_kind("Role")["mlops-launcher"]
    bad = {**role, "rules": [{**role["rules"][0], "verb": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_file_says_what_it_is_for():
    for path in [*MANIFESTS, DEPLOY / "kustomization.yaml", HELM_VALUES]:
        assert path.read_text().startswith("# "), f"{path} must open with a comment saying what it is for"


def test_everything_lives_in_the_mlops_namespace():
    namespaces = by_kind("Namespace")
    assert list(namespaces) == [NAMESPACE]
    assert namespaces[NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in all_documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS if p != SECRET_TEMPLATE)
    assert all((DEPLOY / name).is_file() for name in listed)


# -- least privilege ----------------------------------------------------------------------


def test_no_wildcards_and_no_cluster_scope():
    for doc in all_documents():
        assert doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"), "namespace-scoped grants only"
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{doc['metadata']['name']}: wildcard in {field}"
            assert "secrets" not in rule["resources"]


@pytest.mark.parametrize(
    ("role", "expected"), [("mlops-launcher", LAUNCHER_RULES), ("mlops-launcher-trigger", TRIGGER_RULES)]
)
def test_role_grants_exactly_what_the_launcher_uses(role, expected):
    assert rules_of(by_kind("Role")[role]) == expected


def test_rolebindings_grant_the_roles_to_airflow_only():
    roles, bindings = by_kind("Role"), by_kind("RoleBinding")
    assert set(bindings) == set(AIRFLOW_SUBJECTS)
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["roleRef"]["name"] in roles
        subjects = [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]]
        assert subjects == [("ServiceAccount", *AIRFLOW_SUBJECTS[name])]


def test_trainer_service_account_has_no_token_and_no_permissions():
    account = by_kind("ServiceAccount")["mlops-trainer"]
    assert account["automountServiceAccountToken"] is False
    for binding in by_kind("RoleBinding").values():
        assert all(s["name"] != "mlops-trainer" for s in binding["subjects"])


def test_volumes_are_shared_and_leave_the_storage_class_to_the_cluster():
    claims = by_kind("PersistentVolumeClaim")
    assert set(claims) == {"mlops-lake", "mlops-checkpoints"}
    for claim in claims.values():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert "storageClassName" not in claim["spec"]


def test_secret_template_holds_keys_and_no_values():
    (secret,) = documents(SECRET_TEMPLATE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "mlops-mlflow"
    assert "data" not in secret
    assert secret["stringData"] == {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    assert "kubectl -n mlops create secret generic mlops-mlflow" in SECRET_TEMPLATE.read_text()


# -- checkov ------------------------------------------------------------------------------


def checkov(directory: Path, tmp_path: Path) -> dict:
    out = subprocess.run(
        [str(lint_tool("checkov")), "--skip-download", "--framework", "kubernetes", "-d", str(directory), "-o", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=lint_env(tmp_path),
        timeout=300,
    )
    assert out.stdout.strip(), f"checkov printed nothing (rc {out.returncode}): {out.stderr[-2000:]}"
    report = json.loads(out.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def deploy_report(tmp_path_factory):
    return checkov(DEPLOY, tmp_path_factory.mktemp("checkov"))


def test_checkov_passes_on_deploy(deploy_report):
    summary = deploy_report["summary"]
    failed = deploy_report["results"]["failed_checks"]
    assert summary["failed"] == 0, [(c["check_id"], c["resource"], c["check_name"]) for c in failed]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] >= len(MANIFESTS)


def test_checkov_skips_say_why(deploy_report):
    for check in deploy_report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) > 10, f"{check['check_id']} on {check['resource']} is skipped without a reason"


def test_checkov_fails_a_bad_manifest(tmp_path):
    """The check is live: a wildcard Role and a privileged pod in the default namespace fail."""
    bad = tmp_path / "manifests"
    bad.mkdir()
    (bad / "bad.yaml").write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": "everything", "namespace": NAMESPACE},
                    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "root"},
                    "spec": {
                        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]
                    },
                },
            ]
        )
    )
    failed = {c["check_id"] for c in checkov(bad, tmp_path)["results"]["failed_checks"]}
    assert {"CKV_K8S_49", "CKV_K8S_16", "CKV_K8S_21"} <= failed, failed


# -- Helm values for the official Airflow chart --------------------------------------------


def test_helm_values_run_the_kubernetes_launcher():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert set(values["images"]["airflow"]) >= {"repository", "tag"}
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["MLOPS_LAUNCHER"] == "kubernetes"
    assert env["MLOPS_K8S_NAMESPACE"] == NAMESPACE
    assert env["MLFLOW_TRACKING_URI"].startswith("http")
    # The service accounts the RoleBindings name.
    assert values["workers"]["serviceAccount"]["name"] == AIRFLOW_SUBJECTS["mlops-launcher"][0]
    assert values["triggerer"]["serviceAccount"]["name"] == AIRFLOW_SUBJECTS["mlops-launcher-trigger"][0]


def test_helm_values_take_every_secret_from_existing_secrets():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["postgresql"]["enabled"] is False
    assert values["data"] == {"metadataSecretName": "airflow-metadata"}
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    for inline in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert inline not in values, f"{inline} would put a secret in this file"
    secrets = {s["envName"]: s["secretName"] for s in values["secret"]}
    assert set(secrets) == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLOPS_REGISTRY_LOCK_URI"}
    # The lock's database credentials stay in the control plane: not in the Secret trainer pods read.
    assert secrets["MLOPS_REGISTRY_LOCK_URI"] != secrets["MLFLOW_TRACKING_PASSWORD"]
