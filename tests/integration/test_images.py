"""The container images: hadolint-clean Dockerfiles and the contract the Kubernetes launcher relies on.

Nothing is built here (no Docker engine on these machines): the Dockerfiles are linted and read.
What a built image must offer is what include/mlops/training/k8s asks of it: project root /opt/mlops, the
venv on PATH, uid 10001 non-root, HOME=/tmp, the git commit baked in, and in the GPU image
Horovod with NCCL, Open MPI and an sshd that MPIJob workers run as that user.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lint_tools import lint_env, lint_tool

pytestmark = pytest.mark.integration

DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
CPU = ROOT / "images" / "trainer" / "Dockerfile"
GPU = ROOT / "images" / "trainer-gpu" / "Dockerfile"
TRAINERS = [CPU, GPU]
SSH_HOME = "/home/mpiuser"
WORKER_ARGV = ["/usr/sbin/sshd", "-De", "-f", f"{SSH_HOME}/.sshd_config"]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return out


def stages(path: Path) -> list[list[Instruction]]:
    """Instructions per build stage; stages[0] holds the global ARGs before the first FROM."""
    result: list[list[Instruction]] = [[]]
    for ins in instructions(path):
        if ins.keyword == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def global_args(path: Path) -> dict[str, str]:
    return dict(a.args.split("=", 1) for a in stages(path)[0] if a.keyword == "ARG" and "=" in a.args)


def base_image(stage: list[Instruction], args: dict[str, str]) -> str:
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for ins in stage:
        if ins.keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(ins.args))
    return env


def last(stage: list[Instruction], keyword: str) -> str:
    found = [i.args for i in stage if i.keyword == keyword]
    assert found, f"no {keyword} in the final stage"
    return found[-1]


def runs(stage: list[Instruction]) -> str:
    return "\n".join(i.args for i in stage if i.keyword == "RUN")


def hadolint(path: Path, tmp_path: Path) -> list[dict]:
    out = subprocess.run(
        [str(lint_tool("hadolint")), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=lint_env(tmp_path),
        timeout=120,
    )
    assert out.stdout.strip(), f"hadolint printed nothing (rc {out.returncode}): {out.stderr}"
    return json.loads(out.stdout)


# -- hadolint ---------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_has_no_hadolint_findings(dockerfile, tmp_path):
    findings = hadolint(dockerfile, tmp_path)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    """The check above is live: unpinned, cache-keeping, recommends-installing, root."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3008", "DL3009", "DL3015", "DL3002"} <= codes, codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_ignored_rule_says_why(dockerfile):
    lines = dockerfile.read_text().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            reason = lines[n - 1].strip() if n else ""
            assert reason.startswith("#") and len(reason) > 20 and "hadolint" not in reason, (
                f"{dockerfile}:{n + 1}: `{line.strip()}` needs a comment line above it saying why"
            )


# -- the contract with the Kubernetes launcher -------------------------------------------


@pytest.mark.parametrize("dockerfile", TRAINERS, ids=lambda p: p.parent.name)
def test_trainer_image_contract(dockerfile):
    final = stages(dockerfile)[-1]
    env = env_of(final)
    assert last(final, "USER") == "10001:10001", "numeric non-root user and group, as the pod's securityContext"
    assert re.search(r"useradd --uid 10001 --gid 10001 ", runs(final)), "uid 10001 needs a passwd entry"
    assert last(final, "WORKDIR") == "/opt/mlops"
    assert env["PYTHONPATH"] == "/opt/mlops"
    assert env["HOME"] == "/tmp", "read-only root filesystem: HOME must be a mounted volume"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert Instruction("COPY", "--from=build /opt/venv /opt/venv") in final
    assert any(i.keyword == "ARG" and i.args.split("=")[0] == "GIT_COMMIT" for i in final)
    assert env["MLOPS_GIT_COMMIT"] == "${GIT_COMMIT}"
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in labels
    assert json.loads(last(final, "CMD"))[:3] == ["python", "-m", "include.mlops.trainer"]


@pytest.mark.parametrize("dockerfile", TRAINERS, ids=lambda p: p.parent.name)
def test_trainer_image_ships_only_the_trainer(dockerfile):
    """The trainer program, what it shares with the control plane, and datasets/ (and the GPU image's ssh
    settings); never the rest of include/, dags/ or the control plane's pins."""
    copies = [i.args for i in stages(dockerfile)[-1] if i.keyword == "COPY" and not i.args.startswith("--from")]
    sources = {c.split()[0] for c in copies}
    trainer_half = {
        "include/__init__.py",
        "include/mlops/__init__.py",
        "include/mlops/common/",
        "include/mlops/trainer/",
        "datasets/",
    }
    ssh = {"images/trainer-gpu/ssh_config", "images/trainer-gpu/sshd_config"}
    assert trainer_half <= sources <= trainer_half | ssh, sources


def test_gpu_image_builds_horovod_with_nccl_mpi_and_gloo():
    build, final = stages(GPU)[1], stages(GPU)[-1]
    horovod = next(r.args for r in build if r.keyword == "RUN" and "requirements-horovod.txt" in r.args)
    for needle in [
        "HOROVOD_GPU_OPERATIONS=NCCL",
        "HOROVOD_WITH_TENSORFLOW=1",
        "HOROVOD_WITH_GLOO=1",
        "HOROVOD_WITH_MPI=1",
        "HOROVOD_WITHOUT_PYTORCH=1",
        "HOROVOD_WITHOUT_MXNET=1",
        "CMAKE_POLICY_VERSION_MINIMUM=3.5",
        "--no-build-isolation",
        "-c constraints-trainer.txt",
        "hvd.nccl_built()",
        "hvd.mpi_built()",
        "hvd.gloo_built()",
    ]:
        assert needle in horovod, needle
    assert "WITHOUT_MPI" not in horovod and "WITHOUT_GLOO" not in horovod
    assert "requirements-trainer-gpu.txt -c constraints-trainer.txt" in runs(build)
    assert "tensorflow-cpu" not in GPU.read_text()
    # Open MPI and ssh for MPIJob launchers and workers; no host keys baked into the image.
    for package in ("python3.11", "openmpi-bin", "openssh-client", "openssh-server"):
        assert re.search(rf"\b{re.escape(package)}\b", runs(final)), package
    assert "rm -f /etc/ssh/ssh_host_*" in runs(final)
    # Capabilities are dropped in the pods: Open MPI must not rely on ptrace-based single copy.
    assert env_of(final)["OMPI_MCA_btl_vader_single_copy_mechanism"] == "none"


def test_gpu_image_matches_tensorflow_cuda_build():
    """TensorFlow 2.18 wheels are built against CUDA 12.5 / cuDNN 9: devel to compile, runtime to run."""
    args = global_args(GPU)
    build, final = stages(GPU)[1], stages(GPU)[-1]
    assert base_image(build, args) == "nvidia/cuda:12.5.1-cudnn-devel-ubuntu22.04"
    assert base_image(final, args) == "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04"
    assert base_image(stages(CPU)[1], global_args(CPU)).startswith("python:3.11-")


def test_gpu_requirements_are_the_cpu_pins_with_cuda_tensorflow():
    def pins(name: str) -> list[str]:
        lines = (ROOT / name).read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    cpu, gpu = pins("requirements-trainer.txt"), pins("requirements-trainer-gpu.txt")
    tf_cpu = next(p for p in cpu if p.startswith("tensorflow-cpu=="))
    version = tf_cpu.split("==")[1]
    assert gpu == [f"tensorflow[and-cuda]=={version}" if p == tf_cpu else p for p in cpu]


def test_gpu_image_runs_sshd_as_the_trainer_user():
    final = stages(GPU)[-1]
    user = re.search(r"useradd --uid 10001 --gid 10001 --home-dir (\S+) --create-home --shell \S+ (\w+)", runs(final))
    assert user and user.groups() == (SSH_HOME, "mpiuser"), "passwd home holds the MPIJob's ssh mount"
    assert Instruction("COPY", f"images/trainer-gpu/sshd_config {SSH_HOME}/.sshd_config") in final
    assert Instruction("COPY", "images/trainer-gpu/ssh_config /etc/ssh/ssh_config.d/mpi.conf") in final
    sshd = dict(
        line.split(None, 1)
        for line in (GPU.parent / "sshd_config").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    client = (GPU.parent / "ssh_config").read_text()
    port = sshd["Port"]
    assert int(port) > 1024, "a non-root sshd cannot bind a privileged port"
    assert re.search(rf"^\s+Port {port}$", client, re.M), "launcher ssh must dial the workers' sshd port"
    assert Instruction("EXPOSE", port) in final
    assert sshd["PidFile"].startswith("/tmp/"), "read-only root filesystem: only /tmp is writable"
    assert sshd["HostKey"] == f"{SSH_HOME}/.ssh/id_rsa", "the MPIJob's mounted key doubles as host key"
    assert sshd["AuthorizedKeysFile"] == f"{SSH_HOME}/.ssh/authorized_keys"
    assert sshd["AllowUsers"] == "mpiuser"
    assert (sshd["UsePAM"], sshd["PasswordAuthentication"], sshd["StrictModes"]) == ("no", "no", "no")
    assert (
        " ".join(WORKER_ARGV) in GPU.read_text() and " ".join(WORKER_ARGV) in (GPU.parent / "sshd_config").read_text()
    )


def test_launcher_settings_match_the_gpu_image():
    """The names include/mlops/training/k8s puts into pods and MPIJobs are the ones this image provides."""
    from include.mlops.settings import KubernetesSettings

    k = KubernetesSettings()
    assert list(k.mpi_worker_command) == WORKER_ARGV
    assert k.mpi_ssh_auth_mount_path == f"{SSH_HOME}/.ssh"
    assert k.run_as_user == 10001
    assert k.image_root == "/opt/mlops"


# -- build context -----------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore's matching for this repo's patterns (no negations)."""
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!"), "negated .dockerignore patterns are not checked here"
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_dockerignore_keeps_envs_state_and_vcs_out():
    patterns = dockerignore_patterns()
    for path in (".venv", ".venv-trainer", ".venv-lint", ".local/lake", ".git/HEAD", "include/mlops/__pycache__/x.pyc"):
        assert is_ignored(path, patterns), path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerignore_keeps_every_copy_source(dockerfile):
    patterns = dockerignore_patterns()
    for stage in stages(dockerfile)[1:]:
        for ins in stage:
            if ins.keyword != "COPY" or ins.args.startswith("--from"):
                continue
            for source in [a for a in ins.args.split() if not a.startswith("--")][:-1]:
                assert (ROOT / source).exists(), f"{dockerfile}: COPY {source} does not exist"
                assert not is_ignored(source, patterns), f"{dockerfile}: COPY {source} is excluded by .dockerignore"
