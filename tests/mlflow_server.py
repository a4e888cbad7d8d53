"""A real MLflow tracking server for the end-to-end tests (production's shape: a server in
front of the backend store, artifacts proxied, clients authenticated)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from devstack.embedded_stack import free_port
from devstack.up_stack import MLFLOW_SERVER_ENV, mlflow_auth_ini


class MlflowServer:
    """A real MLflow tracking server: proxied artifacts, basic auth, a SQLite or PostgreSQL store."""

    def __init__(self, root: Path, backend_store_uri: str | None = None):
        self.root = root
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ini = mlflow_auth_ini(self.root / "auth.ini", f"sqlite:///{self.root / 'auth.db'}", "admin", self.password)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW")}
        env.update(
            MLFLOW_SERVER_ENV, MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16)
        )
        self.log = open(self.root / "server.log", "w")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--app-name",
                "basic-auth",
                "--backend-store-uri",
                self.backend_store_uri,
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise AssertionError("MLflow server did not start:\n" + (self.root / "server.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        if self.proc:
            self.log.close()
