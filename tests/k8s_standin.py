"""TEST STAND-IN for a Kubernetes API server. Not a cluster, not for production.

There is no cluster on the machines that run this project's tests, so the cluster side of the
Kubernetes tests is this: an HTTP server on localhost that speaks the part of the Kubernetes
API that the provider's KubernetesPodOperator and our MPIJob path call, and that backs each pod
with a local process. The operator itself is never mocked: it talks to this server through the
official ``kubernetes`` client, exactly as it would to a real API server.

What it serves:

- pods: create, read, list by label selector, strategic-merge patch of labels, delete, log
  (``follow`` and ``timestamps``, RFC 3339 nanosecond prefix), and ``exec`` over a websocket
  (``v4.channel.k8s.io``) for the XCom sidecar: ``cat /airflow/xcom/return.json`` and the
  command that stops the sidecar;
- events (``fieldSelector=involvedObject.name=...``), secrets (create, read);
- ``kubeflow.org/v2beta1`` MPIJobs: create, read (status conditions), delete.

What a pod is here:

- A small "scheduler" checks the pod against the nodes (by default one CPU node and one GPU
  node with 8 GPUs, a label and a taint): GPU capacity, node selector, tolerations. A pod
  that does not fit stays ``Pending`` with a ``FailedScheduling`` event, as on a cluster.
- A pod that fits runs the container's ``command + args`` as a local process (no shell). The
  trainer virtualenv stands in for the image (its ``bin/`` first on PATH, the repository as the
  image's project root, ``MLOPS_GIT_COMMIT`` from the image tag as the image's ENV would).
- Volume mounts are mapped, not mounted: every argv element and env value that starts with a
  ``mountPath`` is rewritten to the host directory backing that volume (a PVC's claim maps to a
  directory given to the stand-in; an ``emptyDir`` to a directory per pod). ``secretKeyRef``
  env vars are resolved from the secrets created through the API.
- An MPIJob's launcher is a pod running the launcher's command with ``/etc/mpi/hostfile``
  listing ``localhost`` with every slot: all ranks run on this machine (no workers, no ssh).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

SIDECAR = "airflow-xcom-sidecar"
XCOM_PATH = "/airflow/xcom"
EMPTY_XCOM = "__airflow_xcom_result_empty__"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(t: float) -> str:
    whole = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((t % 1) * 1e9):09d}Z"


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason}
    return JSONResponse({**body, "code": code}, status_code=code)


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (s.strip() for s in selector.split(","))):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class Node:
    """The one node the stand-in schedules onto."""

    gpus: int = 8
    gpu_resource: str = "nvidia.com/gpu"
    labels: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    taints: list[dict[str, str]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "value": "", "effect": "NoSchedule"}]
    )

    def unschedulable_reason(self, spec: dict[str, Any]) -> str | None:
        """Why the pod cannot run on this node (None: it fits)."""
        wanted = 0
        for c in spec.get("containers", []):
            limits = (c.get("resources") or {}).get("limits") or {}
            wanted += int(limits.get(self.gpu_resource, 0))
        for key, value in (spec.get("nodeSelector") or {}).items():
            if self.labels.get(key) != value:
                return "node(s) didn't match Pod's node affinity/selector"
        tolerated = spec.get("tolerations") or []
        for taint in self.taints:
            if not any(
                t.get("key") == taint["key"]
                and t.get("operator") in ("Exists", None)
                and t.get("effect") in (None, "", taint["effect"])
                for t in tolerated
            ):
                return f"node(s) had untolerated taint {{{taint['key']}: }}"
        if wanted > self.gpus:
            return f"Insufficient {self.gpu_resource}"
        return None


def cpu_node() -> Node:
    return Node(gpus=0, labels={}, taints=[])


def schedule(nodes: list[Node], spec: dict[str, Any]) -> str | None:
    """None if some node fits, else the scheduler's FailedScheduling message."""
    reasons = [n.unschedulable_reason(spec) for n in nodes]
    if any(r is None for r in reasons):
        return None
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    detail = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
    return f"0/{len(nodes)} nodes are available: {detail}. preemption: 0/{len(nodes)} nodes are available."


@dataclass
class Pod:
    manifest: dict[str, Any]
    workdir: Path
    phase: str = "Pending"
    scheduled: bool = False
    reason: str | None = None
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    started: str | None = None
    finished: str | None = None
    sidecar: bool = False
    sidecar_running: bool = False
    lines: list[tuple[float, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    mappings: dict[str, Path] = field(default_factory=dict)
    extra_files: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    def host_path(self, path: str) -> Path | None:
        for mount, host in sorted(self.mappings.items(), key=lambda kv: -len(kv[0])):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return host / path[len(mount) :].lstrip("/")
        return None


class KubeStandIn:
    """See the module docstring. ``start()`` serves on a free localhost port and writes a kubeconfig."""

    def __init__(
        self,
        root: Path,
        *,
        trainer_venv: Path,
        project_root: Path,
        claims: dict[str, Path],
        image_root: str = "/opt/mlops",
        nodes: list[Node] | None = None,
    ):
        self.root = root
        self.trainer_venv = trainer_venv
        self.project_root = project_root
        self.claims = claims
        self.image_root = image_root
        self.nodes = nodes if nodes is not None else [cpu_node(), Node()]
        self.pods: dict[tuple[str, str], Pod] = {}
        self.deleted_pods: list[Pod] = []
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.mpijobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.port = 0
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("Kubernetes stand-in did not start")
            time.sleep(0.05)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                    "users": [{"name": "standin", "user": {"token": "standin-token"}}],
                    "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
                    "current-context": "standin",
                }
            )
        )

    def stop(self) -> None:
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            self._kill(pod)
        if self.server:
            self.server.should_exit = True
        if self.thread:
            self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig.yaml"

    def connection_env(self, conn_id: str = "kubernetes_default", namespace: str = "mlops") -> dict[str, str]:
        """An Airflow connection (as an environment variable) pointing the provider here."""
        extra = {"kube_config_path": str(self.kubeconfig), "namespace": namespace, "in_cluster": False}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "kubernetes", "extra": extra})}

    # -- what tests look at ------------------------------------------------------------------

    def all_pods(self) -> list[Pod]:
        with self.lock:
            return [*self.deleted_pods, *self.pods.values()]

    def wait_for(self, predicate, timeout: float = 120, what: str = "condition") -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"stand-in: timed out waiting for {what}")

    def fail_pod(self, name: str) -> None:
        """The node under a pod dies: its process is killed (a real cluster's pod would fail)."""
        with self.lock:
            pod = next(p for p in self.pods.values() if p.name == name)
        self._kill(pod)

    # -- the API -------------------------------------------------------------------------

    def app(self) -> Starlette:
        ns = "/api/v1/namespaces/{ns}"
        mpi = "/apis/kubeflow.org/v2beta1/namespaces/{ns}/mpijobs"
        routes = [
            Route(f"{ns}/pods", self.pods_collection, methods=["GET", "POST"]),
            Route(f"{ns}/pods/{{name}}", self.pod_item, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{ns}/pods/{{name}}/log", self.pod_log, methods=["GET"]),
            WebSocketRoute(f"{ns}/pods/{{name}}/exec", self.pod_exec),
            Route(f"{ns}/events", self.events, methods=["GET"]),
            Route(f"{ns}/secrets", self.secrets_collection, methods=["POST"]),
            Route(f"{ns}/secrets/{{name}}", self.secret_item, methods=["GET"]),
            Route(mpi, self.mpijobs_collection, methods=["POST", "GET"]),
            Route(f"{mpi}/{{name}}", self.mpijob_item, methods=["GET", "DELETE"]),
        ]
        stand_in = self

        class Record:
            """Every request's method and path, for tests that assert what the operator asked."""

            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                if scope["type"] in ("http", "websocket"):
                    with stand_in.lock:
                        query = scope.get("query_string", b"").decode()
                        stand_in.requests.append((scope.get("method", "WS"), f"{scope['path']}?{query}"))
                await self.app(scope, receive, send)

        return Starlette(routes=routes, middleware=[Middleware(Record)])

    async def pods_collection(self, request: Request):
        namespace = request.path_params["ns"]
        if request.method == "POST":
            manifest = await request.json()
            return JSONResponse(self.create_pod(namespace, manifest), status_code=201)
        selector = request.query_params.get("labelSelector", "")
        with self.lock:
            items = [
                self.render(p)
                for (n, _), p in self.pods.items()
                if n == namespace and _matches(p.manifest["metadata"].get("labels") or {}, selector)
            ]
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def pod_item(self, request: Request):
        key = (request.path_params["ns"], request.path_params["name"])
        with self.lock:
            pod = self.pods.get(key)
        if pod is None:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        if request.method == "PATCH":
            patch = await request.json()
            with self.lock:
                labels = pod.manifest["metadata"].setdefault("labels", {})
                labels.update((patch.get("metadata") or {}).get("labels") or {})
            return JSONResponse(self.render(pod))
        if request.method == "DELETE":
            self.delete_pod(key)
            return JSONResponse(self.render(pod))
        return JSONResponse(self.render(pod))

    async def pod_log(self, request: Request):
        key = (request.path_params["ns"], request.path_params["name"])
        with self.lock:
            pod = self.pods.get(key)
        if pod is None:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        q = request.query_params
        follow = q.get("follow", "false").lower() == "true"
        stamps = q.get("timestamps", "false").lower() == "true"
        since = None
        if q.get("sinceSeconds"):
            since = time.time() - int(q["sinceSeconds"])
        elif q.get("sinceTime"):
            since = dt.datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00")).timestamp()
        tail = int(q["tailLines"]) if q.get("tailLines") else None

        def render(t: float, line: str) -> bytes:
            return ((_stamp(t) + " " if stamps else "") + line + "\n").encode()

        async def stream():
            sent = 0
            lines = [x for x in pod.lines if since is None or x[0] >= since]
            if tail is not None:
                lines = lines[-tail:]
                sent = len(pod.lines)
                for t, line in lines:
                    yield render(t, line)
                if not follow:
                    return
            while True:
                with self.lock:
                    batch = [x for x in pod.lines[sent:] if since is None or x[0] >= since]
                    sent = len(pod.lines)
                    done = pod.exit_code is not None or pod.deleted or (pod.phase == "Pending" and not pod.scheduled)
                for t, line in batch:
                    yield render(t, line)
                if not follow or done:
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/plain")

    async def pod_exec(self, ws: WebSocket):
        key = (ws.path_params["ns"], ws.path_params["name"])
        command = ws.query_params.getlist("command")
        container = ws.query_params.get("container")
        await ws.accept(subprotocol="v4.channel.k8s.io")
        with self.lock:
            pod = self.pods.get(key)
        ok = json.dumps({"metadata": {}, "status": "Success"}).encode()
        if pod is None or container != SIDECAR or not pod.sidecar_running:
            await ws.send_bytes(b"\x03" + json.dumps({"status": "Failure", "message": "container not found"}).encode())
            await ws.close()
            return
        if command[:2] == ["/bin/sh", "-c"] and "return.json" in command[2]:
            target = pod.host_path(f"{XCOM_PATH}/return.json")
            content = target.read_bytes() if target and target.exists() and target.stat().st_size else None
            await ws.send_bytes(b"\x01" + (content if content else (EMPTY_XCOM + "\n").encode()))
            await ws.send_bytes(b"\x03" + ok)
            await ws.close()
            return
        # The sidecar's stop command arrives on stdin (channel 0).
        message = await ws.receive()
        data = message.get("bytes") or (message.get("text") or "").encode()
        if data[:1] == b"\x00":  # stdin: the kill command stops the sidecar
            with self.lock:
                pod.sidecar_running = False
                self._settle(pod)
        await ws.send_bytes(b"\x03" + ok)
        await ws.close()

    async def events(self, request: Request):
        namespace = request.path_params["ns"]
        selector = request.query_params.get("fieldSelector", "")
        m = re.search(r"involvedObject\.name=([^,]+)", selector)
        with self.lock:
            items = [
                e
                for (n, _), p in self.pods.items()
                for e in p.events
                if n == namespace and (m is None or p.name == m.group(1))
            ]
        return JSONResponse({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def secrets_collection(self, request: Request):
        body = await request.json()
        with self.lock:
            self.secrets[(request.path_params["ns"], body["metadata"]["name"])] = body
        return JSONResponse(body, status_code=201)

    async def secret_item(self, request: Request):
        key = (request.path_params["ns"], request.path_params["name"])
        with self.lock:
            secret = self.secrets.get(key)
        return JSONResponse(secret) if secret else _status(404, "NotFound", f'secrets "{key[1]}" not found')

    async def mpijobs_collection(self, request: Request):
        namespace = request.path_params["ns"]
        if request.method == "GET":
            with self.lock:
                items = [j for (n, _), j in self.mpijobs.items() if n == namespace]
            return JSONResponse({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJobList", "items": items})
        body = await request.json()
        return JSONResponse(self.create_mpijob(namespace, body), status_code=201)

    async def mpijob_item(self, request: Request):
        key = (request.path_params["ns"], request.path_params["name"])
        with self.lock:
            job = self.mpijobs.get(key)
        if job is None:
            return _status(404, "NotFound", f'mpijobs.kubeflow.org "{key[1]}" not found')
        if request.method == "DELETE":
            with self.lock:
                self.mpijobs.pop(key, None)
                launchers = [
                    k
                    for k, p in self.pods.items()
                    if p.manifest["metadata"].get("labels", {}).get("training.kubeflow.org/job-name") == key[1]
                ]
            for k in launchers:
                self.delete_pod(k)
            return JSONResponse({"kind": "Status", "status": "Success"})
        with self.lock:
            self._refresh_mpijob(key)
            return JSONResponse(job)

    # -- pods ------------------------------------------------------------------------------

    def create_pod(
        self, namespace: str, manifest: dict[str, Any], extra_files: dict[str, Path] | None = None
    ) -> dict[str, Any]:
        meta = manifest.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), resourceVersion="1")
        workdir = Path(tempfile.mkdtemp(prefix=f"pod-{meta['name'][:40]}-", dir=self.root))
        pod = Pod(manifest=manifest, workdir=workdir, extra_files=dict(extra_files or {}))
        pod.sidecar = any(c["name"] == SIDECAR for c in manifest["spec"]["containers"])
        with self.lock:
            if (namespace, meta["name"]) in self.pods:
                raise ValueError(f"pod {meta['name']} already exists")
            self.pods[(namespace, meta["name"])] = pod
        reason = schedule(self.nodes, manifest["spec"])
        if reason:
            pod.events.append(self._event(pod, "Warning", "FailedScheduling", reason))
            pod.reason = reason
        else:
            threading.Thread(target=self._run, args=(pod,), daemon=True).start()
        return self.render(pod)

    def delete_pod(self, key: tuple[str, str]) -> None:
        with self.lock:
            pod = self.pods.pop(key, None)
            if pod is None:
                return
            pod.deleted = True
            self.deleted_pods.append(pod)
        self._kill(pod)

    def _event(self, pod: Pod, kind: str, reason: str, message: str) -> dict[str, Any]:
        meta = pod.manifest["metadata"]
        return {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"]},
            "reason": reason,
            "message": message,
            "type": kind,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "count": 1,
        }

    def _volume_hosts(self, pod: Pod) -> dict[str, Path]:
        """Volume name -> host directory backing it."""
        out = {}
        for vol in pod.manifest["spec"].get("volumes") or []:
            if "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise ValueError(f"persistentvolumeclaim {claim!r} not found")
                out[vol["name"]] = self.claims[claim]
            else:
                path = pod.workdir / "volumes" / vol["name"]
                path.mkdir(parents=True, exist_ok=True)
                out[vol["name"]] = path
        return out

    def _env(self, pod: Pod, container: dict[str, Any]) -> dict[str, str]:
        namespace = pod.manifest["metadata"]["namespace"]
        env = {"PATH": f"{self.trainer_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        # What the trainer image's ENV sets: its project root on PYTHONPATH, its commit.
        env["PYTHONPATH"] = self.image_root
        env["VIRTUAL_ENV"] = str(self.trainer_venv)
        tag = container.get("image", "").rsplit(":", 1)[-1]
        if re.fullmatch(r"[0-9a-f]{7,40}", tag):
            env["MLOPS_GIT_COMMIT"] = tag
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif ref := (item.get("valueFrom") or {}).get("secretKeyRef"):
                secret = self.secrets.get((namespace, ref["name"]))
                if secret is None:
                    raise ValueError(f'secret "{ref["name"]}" not found')
                value = (secret.get("stringData") or {}).get(ref["key"])
                if value is None:
                    import base64

                    value = base64.b64decode((secret.get("data") or {})[ref["key"]]).decode()
                env[item["name"]] = value
        return env

    def _rewrite(self, pod: Pod, value: str) -> str:
        host = pod.host_path(value)
        return str(host) if host is not None else value

    def _run(self, pod: Pod) -> None:
        container = pod.manifest["spec"]["containers"][0]
        try:
            hosts = self._volume_hosts(pod)
            pod.mappings = {m["mountPath"]: hosts[m["name"]] for m in container.get("volumeMounts") or []}
            pod.mappings.pop("/dev/shm", None)  # the host's /dev/shm serves
            pod.mappings[self.image_root] = self.project_root
            if pod.mappings.get(XCOM_PATH) is None and pod.sidecar:
                pod.mappings[XCOM_PATH] = hosts.get("xcom", pod.workdir / "xcom")
            pod.mappings.update(pod.extra_files)
            env = self._env(pod, container)
            env = {k: self._rewrite(pod, v) if k not in ("PATH", "PYTHONPATH") else v for k, v in env.items()}
            env["PYTHONPATH"] = str(self.project_root)
            argv = [self._rewrite(pod, a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        except (ValueError, KeyError) as exc:
            with self.lock:
                pod.scheduled = True
                pod.reason = "CreateContainerConfigError"
                pod.events.append(self._event(pod, "Warning", "Failed", f"Error: {exc}"))
            return
        pod.argv, pod.env = argv, env
        cwd = self._rewrite(pod, container.get("workingDir") or self.image_root)
        with self.lock:
            if pod.deleted:
                return
            pod.scheduled = True
            pod.events.append(
                self._event(pod, "Normal", "Scheduled", f"Successfully assigned {pod.name} to standin-node")
            )
            try:
                pod.proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                pod.exit_code, pod.finished = 128, _now()
                pod.lines.append((time.time(), f"exec failed: {exc}"))
                self._settle(pod)
                return
            pod.phase, pod.started = "Running", _now()
            pod.sidecar_running = pod.sidecar
        assert pod.proc.stdout is not None
        for raw in pod.proc.stdout:
            with self.lock:
                pod.lines.append((time.time(), raw.decode(errors="replace").rstrip("\n")))
        code = pod.proc.wait()
        with self.lock:
            pod.exit_code = code if code >= 0 else 128 - code
            pod.finished = _now()
            self._settle(pod)

    def _settle(self, pod: Pod) -> None:
        """Phase from the containers: terminal once the main container ended and the sidecar stopped."""
        if pod.exit_code is None or pod.sidecar_running:
            return
        pod.phase = "Succeeded" if pod.exit_code == 0 else "Failed"

    def _kill(self, pod: Pod) -> None:
        proc = pod.proc
        if proc and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def render(self, pod: Pod) -> dict[str, Any]:
        """The pod as the API returns it: the manifest plus a status derived from the process."""
        spec = pod.manifest["spec"]
        statuses = []
        for c in spec["containers"]:
            if pod.phase == "Pending" and not pod.proc:
                reason = pod.reason if pod.reason == "CreateContainerConfigError" else "ContainerCreating"
                state: dict[str, Any] = {"waiting": {"reason": reason, "message": ""}}
            elif c["name"] == SIDECAR:
                state = (
                    {"running": {"startedAt": pod.started}}
                    if pod.sidecar_running
                    else {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": pod.finished or _now()}}
                )
            elif pod.exit_code is None:
                state = {"running": {"startedAt": pod.started}}
            else:
                state = {
                    "terminated": {
                        "exitCode": pod.exit_code,
                        "reason": "Completed" if pod.exit_code == 0 else "Error",
                        "startedAt": pod.started,
                        "finishedAt": pod.finished,
                        "message": "\n".join(line for _, line in pod.lines[-5:]) if pod.exit_code else None,
                    }
                }
            statuses.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": "running" in state,
                    "restartCount": 0,
                    "state": state,
                    "started": "running" in state,
                }
            )
        conditions = [
            {"type": "PodScheduled", "status": "True" if pod.scheduled else "False", "lastTransitionTime": _now()}
        ]
        if not pod.scheduled and pod.reason:
            conditions[0].update(reason="Unschedulable", message=pod.reason)
        status: dict[str, Any] = {"phase": pod.phase, "conditions": conditions, "startTime": pod.started}
        if pod.scheduled or pod.proc:
            status["containerStatuses"] = statuses
        return {**pod.manifest, "status": status}

    # -- MPIJobs -----------------------------------------------------------------------------

    def create_mpijob(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        name = meta["name"]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        replicas = body["spec"]["mpiReplicaSpecs"]
        slots = int(body["spec"].get("slotsPerWorker", 1)) * int(replicas["Worker"].get("replicas", 1))
        template = replicas["Launcher"]["template"]
        launcher = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-launcher",
                "labels": {
                    **(template.get("metadata", {}).get("labels") or {}),
                    "training.kubeflow.org/job-name": name,
                    "training.kubeflow.org/job-role": "launcher",
                },
            },
            "spec": template["spec"],
        }
        hostfile = Path(tempfile.mkdtemp(prefix="mpi-", dir=self.root)) / "hostfile"
        hostfile.write_text(f"localhost slots={slots}\n")
        body["status"] = {"conditions": [{"type": "Created", "status": "True", "lastTransitionTime": _now()}]}
        with self.lock:
            self.mpijobs[(namespace, name)] = body
        # The launcher pod sees the operator's hostfile at /etc/mpi/hostfile.
        self.create_pod(namespace, launcher, extra_files={"/etc/mpi/hostfile": hostfile})
        return body

    def _refresh_mpijob(self, key: tuple[str, str]) -> None:
        job = self.mpijobs[key]
        pod = self.pods.get((key[0], f"{key[1]}-launcher"))
        conditions = job["status"]["conditions"]
        have = {c["type"] for c in conditions}
        if pod is None:
            return
        if pod.phase == "Running" and "Running" not in have:
            conditions.append({"type": "Running", "status": "True", "lastTransitionTime": _now()})
        if pod.phase in ("Succeeded", "Failed") and pod.phase not in have:
            for c in conditions:
                if c["type"] == "Running":
                    c["status"] = "False"
            conditions.append(
                {
                    "type": pod.phase,
                    "status": "True",
                    "reason": "MPIJobSucceeded" if pod.phase == "Succeeded" else "MPIJobFailed",
                    "message": f"MPIJob {key[0]}/{key[1]} {'successfully completed' if pod.phase == 'Succeeded' else 'has failed because 1 Launcher replica(s) failed'}.",
                    "lastTransitionTime": _now(),
                }
            )
