"""The two environments, the images and the compose file describe the same software."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


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
    assert "COPY include/ include/" in dockerfile and "COPY datasets/ datasets/" in dockerfile


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
