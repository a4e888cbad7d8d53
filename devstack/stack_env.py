"""The local production-shaped stack's one settings file: ``.local/stack/stack.env``.

Generated on first use with random local credentials (never ``admin/admin``), mode 0600, and
never rewritten, so every start reuses them. ``docker-compose.yaml`` reads it twice: as
``--env-file`` (interpolation of ``${...}`` in the compose file) and as each service's
``env_file``. Nothing secret is written into the repository.

    python -m devstack.stack_env        # create it if missing; print its path
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from typing import TYPE_CHECKING

from include.mlops.settings import get_settings

if TYPE_CHECKING:
    from pathlib import Path

KEYS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def stack_env_path() -> Path:
    return get_settings().home / "stack" / "stack.env"


def _generated() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        # Fernet: 32 url-safe base64-encoded bytes.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        # Shared by the api-server and every component that signs or checks task tokens.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "MLFLOW_TRACKING_USERNAME": "mlops-admin",
        "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
    }


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ensure_stack_env(path: Path | None = None) -> dict[str, str]:
    """The settings, created with fresh random credentials the first time."""
    path = path or stack_env_path()
    if path.exists():
        values = read_env_file(path)
        missing = [k for k in KEYS if not values.get(k)]
        if missing:
            raise SystemExit(f"{path}: missing {', '.join(missing)}; delete the file to generate a new one")
        return values
    values = _generated()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Local credentials of the production-shaped stack (make up, docker compose).\n")
        fh.write("# Generated once; delete this file (and the stack's data) to start over.\n")
        fh.writelines(f"{key}={values[key]}\n" for key in KEYS)
    return values


def main(argv: list[str] | None = None) -> int:
    ensure_stack_env()
    print(stack_env_path())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
