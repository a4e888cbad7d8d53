"""Trainer jobs: one spec, one command, run locally, in a Kubernetes pod or as an MPIJob.

A ``JobSpec`` renders the exact command line the trainer image runs. The local launcher
runs that command with the trainer environment's ``bin/`` first on PATH, so ``horovodrun``
and ``python`` resolve to the trainer virtualenv just as they resolve to the image's
interpreter in a pod (``include.mlops.training.k8s`` builds the pod and the MPIJob from the same
spec). Results come back by reference: the job writes a small JSON file (MLflow run id,
model URI), never a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

TRAINER_MODULE = "include.mlops.trainer"


class TrainerJobError(RuntimeError):
    """The trainer job exited non-zero or wrote no result."""


@dataclass(frozen=True)
class JobSpec:
    """A trainer job: subcommand, its arguments, and how many Horovod ranks run it."""

    job: str
    args: tuple[str, ...]
    num_proc: int = 1
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.job not in ("train", "evaluate"):
            raise ValueError(f"unknown trainer job {self.job!r}")
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {self.num_proc}")

    def command(self, python: str = "python", *, hostfile: str | None = None) -> list[str]:
        """The command line, identical in the pod and in the local launcher.

        ``hostfile``: ranks spread over the hosts it lists (the MPIJob launcher's
        ``/etc/mpi/hostfile``); horovodrun then starts the remote ranks itself.
        """
        program = [python, "-m", TRAINER_MODULE, self.job, *self.args]
        if self.job != "train":
            return program
        # Training always goes through horovodrun, even with one rank, so that one rank and
        # N ranks exercise the same code path.
        if hostfile:
            return ["horovodrun", "-np", str(self.num_proc), "--hostfile", hostfile, *program]
        return ["horovodrun", "-np", str(self.num_proc), "-H", f"localhost:{self.num_proc}", "--gloo", *program]


def local_env(trainer_venv: Path, project_root: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHONHOME"))}
    env["PATH"] = f"{trainer_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(trainer_venv)
    env["PYTHONPATH"] = str(project_root)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def with_parent_death_signal(cmd: list[str]) -> list[str]:
    """Run ``cmd`` so that it is SIGKILLed when the launching task dies, even by SIGKILL.

    The ranks run in their own session (so a clean stop takes them all with one signal), which
    also means a task killed outright (OOM killer, lost worker) would leave them running into
    the retry. ``setpriv --pdeathsig`` (util-linux) makes the kernel kill horovodrun when its
    parent dies; horovodrun's per-rank middlemen then end the ranks. Without setpriv (not
    Linux), ranks are only stopped by a clean stop.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv not found: ranks outlive a task killed with SIGKILL")
        return cmd
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd]


def run_local(
    spec: JobSpec,
    *,
    trainer_venv: Path,
    project_root: Path,
    result_path: Path,
    extra_env: dict[str, str],
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run a job with the trainer virtualenv, stream its output to the log, return its result."""
    if not (trainer_venv / "bin" / "python").exists():
        raise TrainerJobError(
            f"trainer environment not found at {trainer_venv} (set MLOPS_TRAINER_VENV or run `make trainer-env`)"
        )
    result_path.unlink(missing_ok=True)
    cmd = with_parent_death_signal(spec.command())
    env = local_env(trainer_venv, project_root, {**extra_env, **spec.env})
    log.info("launching: %s", " ".join(cmd))
    tail: deque[str] = deque(maxlen=60)
    proc = subprocess.Popen(
        cmd,
        cwd=project_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # own process group: a killed task takes every rank with it
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            log.info("%s", line)
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    if rc != 0:
        raise TrainerJobError(f"trainer job {spec.job!r} exited with {rc}; last lines:\n" + "\n".join(tail))
    if not result_path.exists():
        raise TrainerJobError(f"trainer job {spec.job!r} finished but wrote no result at {result_path}")
    return json.loads(result_path.read_text())
