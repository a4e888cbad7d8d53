"""Run parameters: a conf key the DAG does not declare is an error, not a silent default.

Airflow validates each declared Param but accepts any other key, so ``{"epoch": 1}`` (for
``epochs``) would train with the default. DAGs tagged ``strict-params`` get:

- on the api-server (REST, and the UI's trigger form, which uses the same endpoint):
  ``RejectUndeclaredConf``, an ASGI middleware the ``mlops_strict_params`` plugin installs,
  answers ``400 {"detail": "..."}`` naming the key, for a new run and for a backfill, before
  anything is created. It only speaks to an authenticated caller allowed to trigger the DAG;
  everyone else gets the route's own 401/403;
- in every other path (``airflow dags trigger``, ``airflow dags test``, a backfill from the
  CLI): the first task fails without retrying, with the same one line.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

STRICT_TAG = "strict-params"

_TRIGGER = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
_BACKFILL = re.compile(r"/api/v2/backfills(?:/dry_run)?/?$")


def undeclared_keys_message(dag_id: str, conf: dict[str, Any] | None, declared: Iterable[str]) -> str | None:
    """One line naming each undeclared key (with the nearest declared one), or None."""
    declared = sorted(declared)
    unknown = sorted(set(conf or {}) - set(declared))
    if not unknown:
        return None
    parts = []
    for key in unknown:
        near = difflib.get_close_matches(key, declared, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    noun = "parameter" if len(unknown) == 1 else "parameters"
    message = f"{dag_id}: unknown run {noun} {', '.join(parts)}; declared: {', '.join(declared)}"
    if "dataset" in unknown and "dataset" not in declared:  # the run parameter of one DAG for all, until 0.2
        message += f"; each dataset has its own DAG now: trigger the one its config names (dag_id), not {dag_id}"
    return message


def _token(scope: dict[str, Any]) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "_token" and value:
            return value
    return None


def _dag_params(dag_id: str) -> tuple[bool, list[str]] | None:
    """(strict, declared keys) of a DAG from the metadata database, or None if unknown."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None:
        return None
    return STRICT_TAG in (dag.tags or set()), list(dag.params.keys())


async def _allowed(token: str | None, dag_id: str) -> bool:
    """Whether the caller may trigger `dag_id` (anything else is left to the route)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not token:
        return False
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except Exception:
        return False
    return manager.is_authorized_dag(
        method="POST", user=user, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id)
    )


class RejectUndeclaredConf:
    """ASGI middleware: 400 for a new run or backfill of a strict DAG with an undeclared conf key."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        trigger, backfill = _TRIGGER.search(path), _BACKFILL.search(path)
        if scope["type"] != "http" or scope.get("method") != "POST" or not (trigger or backfill):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        detail = await self._check(scope, body, trigger)
        if detail:
            payload = json.dumps({"detail": detail}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            return await send({"type": "http.response.body", "body": payload})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _check(self, scope, body: bytes, trigger) -> str | None:
        from starlette.concurrency import run_in_threadpool

        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return None  # the route reports malformed JSON itself
        if not isinstance(data, dict):
            return None
        dag_id = trigger.group("dag_id") if trigger else data.get("dag_id")
        conf = data.get("conf") if trigger else data.get("dag_run_conf")
        if not isinstance(dag_id, str) or not isinstance(conf, dict) or not conf:
            return None
        if not await _allowed(_token(scope), dag_id):
            return None
        found = await run_in_threadpool(_dag_params, dag_id)
        if found is None or not found[0]:
            return None
        return undeclared_keys_message(dag_id, conf, found[1])


def conf_problem(dag_id: str, params, conf: dict[str, Any]) -> str | None:
    """One line for the first thing wrong with `conf` against a DAG's Params, or None."""
    import copy

    message = undeclared_keys_message(dag_id, conf, params.keys())
    if message:
        return message
    for key, value in conf.items():
        try:
            copy.copy(params.get_param(key)).resolve(value)
        except (ValueError, TypeError) as exc:  # ParamValidationError is a ValueError
            return f"{dag_id}: invalid run parameter {key!r}: {str(exc).strip().splitlines()[0]}"
    return None


# airflow CLI commands that create runs: (command, conf flags, where the DAG id is)
_RUN_COMMANDS = {
    ("dags", "trigger"): (("-c", "--conf"), "positional"),
    ("dags", "test"): (("-c", "--conf"), "positional"),
    ("backfill", "create"): (("--dag-run-conf",), ("-d", "--dag-id")),
}


def _flag_value(args: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def airflow_command_problem(args: list[str], dags_folder: str) -> str | None:
    """For ``airflow dags trigger|test`` and ``backfill create``: one line if the conf is wrong.

    Checks what the api-server checks (declared keys, each Param's schema) before Airflow
    creates anything, so the CLI answers with one line instead of a traceback or a run that
    fails later.
    """
    rule = _RUN_COMMANDS.get(tuple(args[:2]))
    if rule is None:
        return None
    conf_flags, where = rule
    raw = _flag_value(args[2:], conf_flags)
    if raw is None:
        return None
    try:
        conf = json.loads(raw)
    except ValueError as exc:
        return f"{conf_flags[-1]} is not valid JSON: {exc}"
    if not isinstance(conf, dict):
        return f"{conf_flags[-1]} must be a JSON object, got {type(conf).__name__}"
    if where == "positional":
        dag_id = args[2] if len(args) > 2 and not args[2].startswith("-") else None
    else:
        dag_id = _flag_value(args[2:], where)
    if not dag_id:
        return None  # Airflow's own usage message names what is missing
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dags_folder, load_op_links=False).dags.get(dag_id)
    if dag is None or STRICT_TAG not in (dag.tags or set()):
        return None
    return conf_problem(dag_id, dag.params, conf)
