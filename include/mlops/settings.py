"""One settings object, read from the environment with embedded defaults.

Embedded default: everything lives under ``<repo>/.local`` (SQLite MLflow store, local
artifacts, a directory data lake). Production sets the same variables to a Postgres-backed
MLflow server, object storage and the Kubernetes launcher.

| variable | default |
| --- | --- |
| ``MLOPS_HOME`` | ``<repo>/.local`` |
| ``MLOPS_LAKE`` | ``$MLOPS_HOME/lake`` |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///$MLOPS_HOME/mlflow/mlflow.db`` |
| ``MLOPS_MLFLOW_ARTIFACT_ROOT`` | ``$MLOPS_HOME/mlflow/artifacts`` |
| ``MLOPS_TRAINER_VENV`` | ``<repo>/.venv-trainer`` |
| ``MLOPS_LAUNCHER`` | ``local`` (or ``kubernetes``) |
| ``MLOPS_REGISTRY_LOCK_URI`` | the tracking URI when it is a database (see ``registry_lock``) |
| ``MLOPS_TASK_RETRY_DELAY`` | ``30`` seconds before a task's retry |
| ``MLOPS_MISSING_DATA`` | ``fail`` (or ``skip``): a scheduled run whose day never arrived |
| ``MLOPS_MLFLOW_UI_URL`` | ``http://127.0.0.1:5000``, where task links point |
| ``MLOPS_DATA_DOCS_URL`` | none: the served Data Docs site task links point into |
| ``MLOPS_DATA_DOCS_ASSETS`` | ``<repo>/.local/data-docs-assets`` (the pages' CSS/JS) |

With ``MLOPS_LAUNCHER=kubernetes`` the trainer jobs run as pods (or an MPIJob across nodes);
``MLOPS_K8S_*`` variables shape them (see ``KubernetesSettings``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = ("local", "kubernetes")


class SettingsError(ValueError):
    """A setting read from the environment is malformed; the message names the variable."""


def env_number(name: str, default: str) -> float:
    """A non-negative number from the environment; SettingsError names the variable otherwise."""
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise SettingsError(f"{name} must be a non-negative number, got {raw!r}")
    return value


def task_retry_delay_seconds() -> int:
    """Pause before a task's retry: ``MLOPS_TASK_RETRY_DELAY`` (whole seconds, default 30)."""
    raw = os.environ.get("MLOPS_TASK_RETRY_DELAY", "30")
    if not raw.isdigit():
        raise SettingsError(f"MLOPS_TASK_RETRY_DELAY must be a whole number of seconds, got {raw!r}")
    return int(raw)


def missing_data_policy() -> str:
    """What a scheduled run does when its day never arrives: ``MLOPS_MISSING_DATA``, fail or skip."""
    policy = os.environ.get("MLOPS_MISSING_DATA", "fail")
    if policy not in ("fail", "skip"):
        raise SettingsError(f"MLOPS_MISSING_DATA must be 'fail' or 'skip', got {policy!r}")
    return policy


def mlflow_ui_url() -> str:
    """The MLflow UI the task links point at: ``MLOPS_MLFLOW_UI_URL``."""
    return os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def data_docs_site_url() -> str:
    """The served Data Docs site the validate task's link points into: ``MLOPS_DATA_DOCS_URL`` (none: no link)."""
    return os.environ.get("MLOPS_DATA_DOCS_URL", "").rstrip("/")


def registry_lock_uri() -> str:
    """``MLOPS_REGISTRY_LOCK_URI``: the database of the champion lock, when not the tracking store's."""
    return os.environ.get("MLOPS_REGISTRY_LOCK_URI", "").strip()


def data_docs_assets_dir() -> Path:
    """The Data Docs pages' CSS/JS: ``MLOPS_DATA_DOCS_ASSETS``, else ``<repo>/.local/data-docs-assets``."""
    return Path(os.environ.get("MLOPS_DATA_DOCS_ASSETS") or PROJECT_ROOT / ".local" / "data-docs-assets")


def launcher_from_env() -> str:
    """The configured launcher, read without touching the file system (safe at DAG parse time)."""
    launcher = os.environ.get("MLOPS_LAUNCHER", "local")
    if launcher not in LAUNCHERS:
        raise SettingsError(f"MLOPS_LAUNCHER must be 'local' or 'kubernetes', got {launcher!r}")
    return launcher


# An image reference pinned to content: a digest, or a tag that is a git commit (7-40 hex).
_PINNED_IMAGE = re.compile(r"^[^\s@:]+(?::\d+)?(?:/[^\s@:]+)*(?:@sha256:[0-9a-f]{64}|:[0-9a-f]{7,40})$")


def is_pinned_image(ref: str) -> bool:
    return bool(_PINNED_IMAGE.match(ref))


_TEXT_FIELDS = (
    "namespace",
    "conn_id",
    "image_pull_policy",
    "gpu_resource",
    "cpu_per_rank",
    "memory_per_rank",
    "eval_cpu",
    "eval_memory",
    "shm_size",
    "service_account",
    "image_root",
    "lake_pvc",
    "lake_path",
    "checkpoint_pvc",
    "checkpoint_path",
    "mlflow_secret",
    "mpi_ssh_auth_mount_path",
)
_NUMBER_FIELDS = {
    "gpus_per_node": ("GPUS_PER_NODE", int, 1),
    "run_as_user": ("RUN_AS_USER", int, 1),
    "schedule_timeout_seconds": ("SCHEDULE_TIMEOUT", int, 1),
    "startup_timeout_seconds": ("STARTUP_TIMEOUT", int, 1),
    "active_deadline_seconds": ("ACTIVE_DEADLINE", int, 1),
    "mpi_poll_seconds": ("MPI_POLL_SECONDS", float, 0.1),
}
_NUMBER_NAMES = {int: "an integer", float: "a number"}


@dataclass(frozen=True)
class KubernetesSettings:
    """How trainer jobs run on Kubernetes (``MLOPS_K8S_*``; defaults in ``from_env``).

    Paths are the ones inside the trainer image and its pod: the project root baked into the
    image, and the mount paths of the lake and checkpoint volumes.
    """

    namespace: str = "mlops"
    conn_id: str = "kubernetes_default"
    image: str = ""
    image_pull_policy: str = "IfNotPresent"
    gpus_per_node: int = 8
    gpu_resource: str = "nvidia.com/gpu"
    cpu_per_rank: str = "4"
    memory_per_rank: str = "16Gi"
    eval_cpu: str = "2"
    eval_memory: str = "8Gi"
    shm_size: str = "2Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    service_account: str = "mlops-trainer"
    run_as_user: int = 10001
    image_root: str = "/opt/mlops"
    lake_pvc: str = "mlops-lake"
    lake_path: str = "/mnt/lake"
    checkpoint_pvc: str = "mlops-checkpoints"
    checkpoint_path: str = "/mnt/checkpoints"
    mlflow_tracking_uri: str = ""
    mlflow_secret: str = "mlops-mlflow"
    schedule_timeout_seconds: int = 600
    startup_timeout_seconds: int = 300
    active_deadline_seconds: int = 6 * 3600
    deferrable: bool = False
    mpi_ssh_auth_mount_path: str = "/home/mpiuser/.ssh"
    mpi_worker_command: tuple[str, ...] = ("/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config")
    mpi_poll_seconds: float = 10.0

    @property
    def dataset_dir(self) -> str:
        return f"{self.image_root}/datasets"

    @classmethod
    def from_env(
        cls, env: dict[str, str] | os._Environ, *, mlflow_tracking_uri: str, git_commit: str | None
    ) -> KubernetesSettings:
        def text(key: str, default: str) -> str:
            return env.get(f"MLOPS_K8S_{key}", default)

        def number(key: str, default: float, kind: type, minimum: float) -> Any:
            raw = env.get(f"MLOPS_K8S_{key}")
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"MLOPS_K8S_{key} must be {_NUMBER_NAMES[kind]}, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"MLOPS_K8S_{key} must be >= {minimum}, got {value}")
            return value

        def js(key: str, default: Any, kind: type) -> Any:
            raw = env.get(f"MLOPS_K8S_{key}")
            if raw is None:
                return default
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"MLOPS_K8S_{key} is not valid JSON: {exc.msg} at char {exc.pos}") from None
            if not isinstance(value, kind):
                raise SettingsError(f"MLOPS_K8S_{key} must be a JSON {kind.__name__}, got {type(value).__name__}")
            return value

        defaults = cls()
        # Text settings: MLOPS_K8S_<FIELD NAME IN CAPITALS>.
        values: dict[str, Any] = {name: text(name.upper(), getattr(defaults, name)) for name in _TEXT_FIELDS}
        # Numbers: MLOPS_K8S_<variable>, each with its lower bound.
        for name, (key, kind, minimum) in _NUMBER_FIELDS.items():
            values[name] = number(key, getattr(defaults, name), kind, minimum)
        gpu = values["gpu_resource"]
        image = env.get("MLOPS_K8S_IMAGE", "")
        if not image:
            repository = text("IMAGE_REPOSITORY", "mlops-trainer-gpu")
            image = f"{repository}:{git_commit}" if git_commit and git_commit != "unknown" else ""
        if image and not is_pinned_image(image):
            raise SettingsError(
                f"MLOPS_K8S_IMAGE must be pinned by digest (@sha256:...) or a git commit tag, got {image!r}"
            )
        deferrable = text("DEFERRABLE", "false").lower()
        if deferrable not in ("true", "false"):
            raise SettingsError(f"MLOPS_K8S_DEFERRABLE must be true or false, got {deferrable!r}")
        return cls(
            **values,
            image=image,
            # GPU nodes by default; with MLOPS_K8S_GPU_RESOURCE empty (CPU-only pods), anywhere.
            node_selector=js("NODE_SELECTOR", {f"{gpu}.present": "true"} if gpu else {}, dict),
            tolerations=js(
                "TOLERATIONS", [{"key": gpu, "operator": "Exists", "effect": "NoSchedule"}] if gpu else [], list
            ),
            affinity=js("AFFINITY", {}, dict),
            mlflow_tracking_uri=env.get("MLOPS_K8S_MLFLOW_TRACKING_URI", mlflow_tracking_uri),
            deferrable=deferrable == "true",
            mpi_worker_command=tuple(str(a) for a in js("MPI_WORKER_COMMAND", list(defaults.mpi_worker_command), list)),
        )

    def check_ready(self) -> None:
        """What a pod needs before one is created; raises SettingsError naming the variable."""
        if not self.image:
            raise SettingsError(
                "MLOPS_K8S_IMAGE is not set and no git commit is known for the default "
                "mlops-trainer-gpu:<commit> tag; set it to the trainer image pinned by digest or commit"
            )
        if not self.mlflow_tracking_uri.startswith(("http://", "https://")):
            raise SettingsError(
                "trainer pods reach MLflow over HTTP: set MLOPS_K8S_MLFLOW_TRACKING_URI (or MLFLOW_TRACKING_URI) "
                f"to the MLflow server's http(s) URL, got {self.mlflow_tracking_uri!r}"
            )


@dataclass(frozen=True)
class Settings:
    project_root: Path
    home: Path
    lake: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    trainer_venv: Path
    launcher: str
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)

    @property
    def datasets_dir(self) -> Path:
        return self.project_root / "datasets"

    @property
    def expectations_dir(self) -> Path:
        return self.project_root / "expectations"

    @property
    def gx_root(self) -> Path:
        return self.home / "gx"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def validation_dir(self) -> Path:
        """Validation records, beside the data and never inside a partition."""
        return self.lake / "_validation"

    @property
    def quarantine_dir(self) -> Path:
        return self.lake / "_quarantine"

    def dataset_config_path(self, dataset: str) -> Path:
        return self.datasets_dir / f"{dataset}.yaml"

    def trainer_env(self) -> dict[str, str]:
        """Environment the trainer job needs; the Kubernetes launcher sets the same keys."""
        return {
            "MLOPS_LAKE": str(self.lake),
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "MLOPS_MLFLOW_ARTIFACT_ROOT": self.mlflow_artifact_root,
        }


def get_settings() -> Settings:
    env = os.environ
    root = Path(env.get("MLOPS_PROJECT_ROOT", PROJECT_ROOT)).resolve()
    home = Path(env.get("MLOPS_HOME", root / ".local")).resolve()
    launcher = launcher_from_env()
    tracking_uri = env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db")
    return Settings(
        project_root=root,
        home=home,
        lake=Path(env.get("MLOPS_LAKE", home / "lake")).resolve(),
        mlflow_tracking_uri=tracking_uri,
        mlflow_artifact_root=env.get("MLOPS_MLFLOW_ARTIFACT_ROOT", str(home / "mlflow" / "artifacts")),
        trainer_venv=Path(env.get("MLOPS_TRAINER_VENV", root / ".venv-trainer")).resolve(),
        launcher=launcher,
        kubernetes=(
            KubernetesSettings.from_env(env, mlflow_tracking_uri=tracking_uri, git_commit=env.get("MLOPS_GIT_COMMIT"))
            if launcher == "kubernetes"
            else KubernetesSettings()
        ),
    )


def git_commit(root: Path) -> str:
    """The commit the code runs from: MLOPS_GIT_COMMIT (set in images), else git, else 'unknown'."""
    if os.environ.get("MLOPS_GIT_COMMIT"):
        return os.environ["MLOPS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
