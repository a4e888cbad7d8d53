"""The two environments, the images and the compose file describe the same software."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.trainer_image import shipped_sources

pytestmark = pytest.mark.integration


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==([^\s;#]+)", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_direct_pins_match_their_lock_files():
    for req, lock in [
        ("requirements.txt", "constraints.txt"),
        ("requirements-dev.txt", "constraints.txt"),
        ("requirements-trainer.txt", "constraints-trainer.txt"),
        ("requirements-lint.txt", "constraints-lint.txt"),
    ]:
        locked = pins(ROOT / lock)
        for name, version in pins(ROOT / req).items():
            assert locked.get(name) == version, f"{req} pins {name}=={version}, {lock} has {locked.get(name)}"


def test_both_environments_share_mlflow_and_data_stack():
    control, trainer = pins(ROOT / "constraints.txt"), pins(ROOT / "constraints-trainer.txt")
    for name in ("mlflow", "mlflow-skinny", "pandas", "pyarrow", "pyyaml", "scikit-learn"):
        assert control[name] == trainer[name], name
    assert pins(ROOT / "requirements.txt")["apache-airflow"].startswith("3.3.")
    assert pins(ROOT / "requirements-horovod.txt") == {"horovod": "0.28.1"}


def test_trainer_image_builds_what_the_local_launcher_uses():
    dockerfile = (ROOT / "images" / "trainer" / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for needle in [
        "requirements-trainer.txt",
        "requirements-horovod.txt",
        "constraints-trainer.txt",
        "HOROVOD_WITH_TENSORFLOW=1",
        "HOROVOD_WITH_GLOO=1",
        "HOROVOD_WITHOUT_MPI=1",
        "--no-build-isolation",
        "hvd.gloo_built()",
    ]:
        assert needle in dockerfile, needle
        assert needle in makefile, needle
    assert "python:3.11" in dockerfile
    # The program the launcher runs and the dataset configs it names; test_trainer.py runs it from this tree.
    assert {"include/mlops/trainer/", "include/mlops/common/", "datasets/"} <= set(shipped_sources())


def test_compose_file_is_valid_compose_spec():
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_compose_runs_the_pipeline_as_production_would():
    compose = _compose()
    services = compose["services"]
    # Every long-running service has a healthcheck; one-shot services say so.
    for name, service in services.items():
        assert "healthcheck" in service or service.get("restart") == "no", name
    # MLflow does not go through Airflow's entrypoint, and it asks for credentials.
    mlflow = services["mlflow"]
    assert mlflow["entrypoint"][0] == "/bin/bash"
    assert "--app-name basic-auth" in mlflow["command"][0] and "--serve-artifacts" in mlflow["command"][0]
    # The Airflow services share one settings file (JWT secret, API secret key, Fernet key).
    airflow = [n for n in services if n.startswith("airflow-")]
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"} <= set(airflow)
    for name in [*airflow, "postgres", "mlflow"]:
        assert services[name]["env_file"] == [{"path": ".local/stack/stack.env", "required": True}], name
    # The trainer is in the image the scheduler runs tasks in.
    assert services["airflow-scheduler"]["build"]["target"] == "with-trainer"
    dockerfile = (ROOT / "images" / "airflow" / "Dockerfile").read_text()
    with_trainer = dockerfile.split("AS with-trainer", 1)[1].split("FROM ", 1)[0]
    assert "MLOPS_TRAINER_VENV=/opt/trainer-venv" in with_trainer
    trainer_build = dockerfile.split("AS trainer-build", 1)[1].split("\nFROM ", 1)[0]
    for needle in ["requirements-trainer.txt", "requirements-horovod.txt", "constraints-trainer.txt",
                   "HOROVOD_WITH_GLOO=1", "--no-build-isolation", "hvd.gloo_built()"]:  # fmt: skip
        assert needle in trainer_build, needle
    # The shared volume is handed to Airflow's uid before anything writes to it.
    assert "chown -R 50000:0 /data" in services["volume-init"]["command"][0]
    # Only on this machine's loopback.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_compose_holds_no_secret():
    import re

    text = (ROOT / "docker-compose.yaml").read_text()
    # Interpolations must not fall back to a default value (a default would be a password).
    for match in re.finditer(r"\$\{([A-Z_]+)(:?[-?])?([^}]*)\}", text):
        assert match.group(2) in (None, ":?"), match.group(0)
    for name, service in _compose()["services"].items():
        env = service.get("environment", {})
        for key, _value in env.items() if isinstance(env, dict) else []:
            if any(word in key for word in ("PASSWORD", "SECRET", "FERNET", "TOKEN")) and not key.endswith("_FILE"):
                raise AssertionError(f"{name}: {key} is inline; it belongs in .local/stack/stack.env")


def test_stack_settings_file_is_generated_once_private_and_complete(home):
    import os
    import stat

    from devstack.stack_env import KEYS, ensure_stack_env, stack_env_path

    first = ensure_stack_env()
    path = stack_env_path()
    assert path == home.home / "stack" / "stack.env"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert set(first) == set(KEYS) and all(first.values())
    assert first["MLFLOW_TRACKING_PASSWORD"] != "admin" and len(first["POSTGRES_PASSWORD"]) >= 20
    assert ensure_stack_env() == first  # never rewritten
    from cryptography.fernet import Fernet

    Fernet(first["AIRFLOW__CORE__FERNET_KEY"])  # a key Airflow accepts


def test_hosted_ci_workflow_is_valid_and_runs_what_ci_runs():
    workflow = ROOT / ".github" / "workflows" / "ci.yml"
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    import yaml

    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    steps = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert "bash .ci/run" in steps and "make test" in (ROOT / ".ci" / "run").read_text()
    assert "ruff check ." in "\n".join(step.get("run", "") for step in jobs["lint"]["steps"])
    cached = next(s for s in jobs["test"]["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert {".venv", ".venv-trainer"} <= set(cached["with"]["path"].split())


def test_gitignore_keeps_state_and_envs_out():
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", ".local/x", ".venv", ".venv-trainer"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == [".local/x", ".venv", ".venv-trainer"]
