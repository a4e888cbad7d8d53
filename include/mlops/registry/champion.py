"""MLflow model registry: idempotent registration, alias promotion, history and rollback.

Aliases, not stages: every candidate gets ``challenger``; ``champion`` moves only through
``move_champion`` (compare-and-set against the champion the gate compared with) or ``rollback``.
Each move of ``champion`` is recorded first, as its own small registered-model tag
(``champion.move.<n>``), and only then does the alias move; ``previous-champion`` names the
version it replaced. One tag per move keeps every write small: MLflow's SQL stores declare tag
values 5000 characters, which PostgreSQL enforces.

CLI (the registered model is the one ``datasets/<dataset>.yaml`` names; ``--name`` overrides)::

    python -m include.mlops.registry show [--dataset card_fraud | --name MODEL]
    python -m include.mlops.registry rollback [--dataset card_fraud | --name MODEL] [--to VERSION]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

from include.mlops.common.tracking import get_alias
from include.mlops.registry.lock import LockNotTakenError, champion_lock

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
HISTORY_TAG = "champion.history"  # the single growing tag of earlier versions: read, never written
MOVE_TAG_PREFIX = "champion.move."
DECISION_TAG = "promotion.decision"  # on a version: what its run decided, written once
REASON_LIMIT = 1000  # the full verdict is the candidate run's gate/verdict.json artifact


class StaleVerdictError(RuntimeError):
    """The champion moved after the gate compared against it."""


class RegistryError(RuntimeError):
    pass


def find_version_for_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered for a training run, if any (oldest first)."""
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


DEFAULT_DESCRIPTION = "Binary classifier: the probability of the positive label, per row."


def register_candidate(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    description: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register a candidate once per training run; returns (version, created).

    Re-running registration for the same run finds the existing version and only refreshes
    its tags, so a retried or cleared task never creates a second version. `description`
    (the dataset config's ``registered_model_description``) is given to the registered model
    when this call creates it.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, description=description or DEFAULT_DESCRIPTION)
        except MlflowException as exc2:
            if exc2.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    existing = find_version_for_run(client, name, run_id)
    if existing is not None and recorded_decision(existing):
        # A rerun of a run that already decided: the record of that decision stays as it is.
        log.info("%s version %s: promotion already decided; tags and aliases left as they are", name, existing.version)
        return existing, False
    if existing is not None:
        version, created = existing, False
    else:
        # A logged model's URI (models:/m-...) names its model id; an MLflow server requires the
        # id alongside such a source (a direct SQL store does not).
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
        created = True
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    log.info("%s version %s %s; alias %s", name, version.version, "registered" if created else "reused", CHALLENGER)
    return client.get_model_version(name, version.version), created


def recorded_decision(version: ModelVersion) -> dict[str, Any] | None:
    """What the run that registered `version` decided about promoting it, if it decided."""
    raw = (version.tags or {}).get(DECISION_TAG)
    return json.loads(raw) if raw else None


def record_decision(client: MlflowClient, name: str, version: str, decision: str, reason: str) -> dict[str, Any]:
    """Record, once, whether `version` was promoted and why; later calls keep the first record."""
    current = recorded_decision(client.get_model_version(name, str(version)))
    if current:
        return current
    entry = {"decision": decision, "reason": reason[:REASON_LIMIT], "at": dt.datetime.now(dt.UTC).isoformat()}
    client.set_model_version_tag(name, str(version), DECISION_TAG, json.dumps(entry))
    return entry


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every move of ``champion``, oldest first."""
    tags = client.get_registered_model(name).tags
    legacy = json.loads(tags[HISTORY_TAG]) if tags.get(HISTORY_TAG) else []
    moves = [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(MOVE_TAG_PREFIX))]
    return legacy + moves


def _record_move_then_point_alias(client: MlflowClient, name: str, version: str, event: dict[str, Any]) -> None:
    """Record the move, then move the pointers: a crash in between leaves a record a retry can see."""
    tags = client.get_registered_model(name).tags
    numbers = [int(k[len(MOVE_TAG_PREFIX) :]) for k in tags if k.startswith(MOVE_TAG_PREFIX)]
    last = json.loads(tags[f"{MOVE_TAG_PREFIX}{max(numbers):06d}"]) if numbers else {}
    entry = {"version": str(version), "at": dt.datetime.now(dt.UTC).isoformat(), **event}
    if isinstance(entry.get("reason"), str) and len(entry["reason"]) > REASON_LIMIT:
        entry["reason"] = entry["reason"][: REASON_LIMIT - 1] + "…"
    if (last.get("version"), last.get("previous"), last.get("action")) == (
        entry["version"],
        entry.get("previous"),
        entry.get("action"),
    ):
        # A retry after a crash between the record and the alias: the record stands, finish the move.
        entry["at"] = last.get("at", entry["at"])
        log.info("%s: completing recorded move of champion to %s", name, version)
    else:
        client.set_registered_model_tag(name, f"{MOVE_TAG_PREFIX}{1 + max(numbers, default=0):06d}", json.dumps(entry))
    if event.get("previous"):
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(event["previous"]))
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "champion.promoted_at", entry["at"])


def move_champion(
    client: MlflowClient,
    name: str,
    version: str,
    expected_champion: str | None,
    reason: str = "",
    beats_champion: bool | None = None,
) -> dict[str, Any]:
    """Move ``champion`` to `version` if it still points where the gate looked.

    Safe to re-run: promoting the version that already is champion is a no-op. The check and
    the move happen under the model's champion lock (``registry_lock``). Held (recorded on the
    version, champion unchanged): a candidate trained on a window ending before the champion's;
    one that does not beat the champion beyond noise (``beats_champion`` False) on data no
    newer than the champion's.
    """
    with champion_lock(client.tracking_uri, name):
        return _move_champion_locked(client, name, version, expected_champion, reason, beats_champion)


def _move_champion_locked(
    client: MlflowClient,
    name: str,
    version: str,
    expected_champion: str | None,
    reason: str,
    beats_champion: bool | None,
) -> dict[str, Any]:
    current = get_alias(client, name, CHAMPION)
    current_version = str(current.version) if current else None
    if current_version == str(version):
        record_decision(client, name, str(version), "promoted", reason or "gate passed")  # after a crash in between
        return {"promoted": False, "already_champion": True, "previous": current_version}
    candidate = client.get_model_version(name, str(version))
    decided = recorded_decision(candidate)
    if decided:
        return {"promoted": False, "already_champion": False, "previous": current_version, "decided": decided}
    theirs = (current.tags or {}).get("data.interval_end", "") if current else ""
    ours = (candidate.tags or {}).get("data.interval_end", "")
    if theirs and ours and _instant(ours) < _instant(theirs):
        why = (
            f"version {version} was trained on data ending {ours}, before champion {current_version}'s "
            f"({theirs}): an older window never replaces the champion"
        )
        return {"promoted": False, "already_champion": False, "previous": current_version,
                "decided": record_decision(client, name, str(version), "held", why)}  # fmt: skip
    if (
        current is not None
        and beats_champion is False
        and (not theirs or not ours or _instant(ours) <= _instant(theirs))
    ):
        why = (
            f"version {version} does not beat champion {current_version} beyond noise and was trained on data "
            "no newer than the champion's: the champion stays"
        )
        return {"promoted": False, "already_champion": False, "previous": current_version,
                "decided": record_decision(client, name, str(version), "held", why)}  # fmt: skip
    if current_version != (str(expected_champion) if expected_champion is not None else None):
        raise StaleVerdictError(
            f"{name}: champion is now {current_version or 'unset'}, but the gate compared against "
            f"{expected_champion or 'no champion'}; re-run evaluation before promoting version {version}"
        )
    _record_move_then_point_alias(
        client, name, str(version), {"previous": current_version, "action": "promote", "reason": reason}
    )
    record_decision(client, name, str(version), "promoted", reason or "gate passed")
    log.info("%s: champion %s -> %s", name, current_version, version)
    return {"promoted": True, "already_champion": False, "previous": current_version}


def _instant(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def champion_stack(entries: list[dict[str, Any]]) -> list[str]:
    """The champions still "in force" after replaying the history, oldest first.

    A promotion pushes its version; a rollback pops back to its target (or, for an explicit
    target that was never on the stack, pushes it). So a second rollback goes one step further
    back instead of restoring the version the first one removed.
    """
    stack: list[str] = []
    for entry in entries:
        version = str(entry.get("version"))
        if entry.get("action") == "rollback" and version in stack:
            del stack[stack.index(version) + 1 :]
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback(client: MlflowClient, name: str, to_version: str | None = None, force: bool = False) -> dict[str, Any]:
    """Point ``champion`` back at `to_version`, or at the champion the current one replaced.

    Repeated rollbacks walk further back through the history. A version that never passed a
    gate (``gate.passed`` != ``true``) is refused unless ``force``. Runs under the model's
    champion lock, like ``move_champion``.
    """
    with champion_lock(client.tracking_uri, name):
        return _rollback_locked(client, name, to_version, force)


def _rollback_locked(client: MlflowClient, name: str, to_version: str | None, force: bool) -> dict[str, Any]:
    current = get_alias(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    if to_version is None:
        stack = [v for v in champion_stack(history(client, name)) if v != str(current.version)]
        if not stack:
            raise RegistryError(f"{name}: no earlier champion in its history; pass --to VERSION")
        to_version = stack[-1]
    target = client.get_model_version(name, str(to_version))  # raises if the version does not exist
    if target.tags.get("gate.passed") != "true" and not force:
        raise RegistryError(
            f"{name} version {to_version} never passed a gate (gate.passed={target.tags.get('gate.passed')!r}); "
            "pass --force to make it champion anyway"
        )
    event = {"previous": str(current.version), "action": "rollback", **({"forced": True} if force else {})}
    _record_move_then_point_alias(client, name, str(to_version), event)
    return {"champion": str(to_version), "previous": str(current.version)}


def _model_name(args: argparse.Namespace, settings: Any) -> str:
    """--name, or the registered model of datasets/<--dataset>.yaml."""
    from include.mlops.common.dataset import load_dataset_config

    if args.name:
        return args.name
    path = settings.dataset_config_path(args.dataset)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in settings.datasets_dir.glob("*.yaml"))) or "none"
        raise RegistryError(f"no dataset config {path} (datasets: {known}); or pass --name MODEL")
    return load_dataset_config(path).registered_model


def _require_model(client: MlflowClient, name: str) -> Any:
    """The registered model `name`; RegistryError (naming the models there are) if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    names = sorted(m.name for m in client.search_registered_models(max_results=50))
    raise RegistryError(f"no registered model named {name!r} (registered: {', '.join(names) or 'none'})")


def main(argv: list[str] | None = None) -> int:
    from include.mlops.common.dataset import DatasetConfigError
    from include.mlops.common.tracking import mlflow_client
    from include.mlops.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m include.mlops.registry", description="Model registry operations")
    parser.add_argument("command", choices=["show", "rollback"])
    parser.add_argument(
        "--dataset", default="card_fraud", help="the registered model of datasets/DATASET.yaml (default: card_fraud)"
    )
    parser.add_argument("--name", default=None, help="registered model name (overrides --dataset)")
    parser.add_argument("--to", default=None, help="version to roll back to (default: previous champion)")
    parser.add_argument("--force", action="store_true", help="roll back to a version that never passed a gate")
    args = parser.parse_args(argv)
    from mlflow.exceptions import MlflowException

    settings = get_settings()
    client = mlflow_client(settings.mlflow_tracking_uri)
    try:
        name = _model_name(args, settings)
        model = _require_model(client, name)
        if args.command == "rollback":
            print(json.dumps(rollback(client, name, args.to, force=args.force), indent=2))
            return 0
        moves = history(client, name)
    except (RegistryError, DatasetConfigError, LockNotTakenError, MlflowException) as exc:
        message = str(getattr(exc, "message", exc)).strip().splitlines()
        print(f"registry {args.command}: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        return 2
    print(json.dumps({"name": model.name, "aliases": model.aliases, "history": moves}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
