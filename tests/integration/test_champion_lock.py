"""Moves of ``champion`` are serialised across processes by a lock in the registry's database.

Real MLflow stores (PostgreSQL as production runs it, and the embedded SQLite), real separate
processes. The racing promoters read the champion through a client that pauses after every
registry read, so without the lock both would pass the compare-and-set and both would move.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import time

import mlflow
import pytest

from include.mlops.registry import champion as registry
from include.mlops.registry.lock import LockNotTakenError, champion_lock, lock_uri

pytestmark = pytest.mark.integration

NAME = "fraud-detector"
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def store(mlflow_store):
    return mlflow_store


class SlowClient(mlflow.MlflowClient):
    """A real client that pauses after each read of the registered model (widens the race)."""

    def get_registered_model(self, name):
        model = super().get_registered_model(name)
        time.sleep(0.5)
        return model


def _register(uri, tmp_path, n, gated="true"):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("t")
    versions = []
    for _ in range(n):
        run = client.create_run(exp.experiment_id)
        src = tmp_path / run.info.run_id
        src.mkdir()
        (src / "MLmodel").write_text("artifact_path: model\n")
        client.set_terminated(run.info.run_id)
        v, _ = registry.register_candidate(client, NAME, src.as_uri(), run.info.run_id, {"gate.passed": gated})
        versions.append(str(v.version))
    return client, versions


def _move(uri, action, version, expected, start_at, queue):
    """One promoter or rolling-back operator, in its own process."""
    client = SlowClient(uri)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        if action == "promote":
            out = registry.move_champion(client, NAME, version, expected, reason=f"racer {version}")
        else:
            out = registry.rollback(client, NAME)
        queue.put((action, version, "ok", out))
    except (registry.StaleVerdictError, registry.RegistryError, LockNotTakenError) as exc:
        queue.put((action, version, "refused", str(exc)))


def _race(uri, moves):
    queue = SPAWN.Queue()
    start_at = time.time() + 4  # every process imported and connected before anyone moves
    procs = [SPAWN.Process(target=_move, args=(uri, *m, start_at, queue)) for m in moves]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def _consistent(client):
    """The champion, the previous-champion alias and the history all tell the same story."""
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    history = registry.history(client, NAME)
    assert aliases["champion"] == history[-1]["version"]
    if history[-1].get("previous"):
        assert aliases["previous-champion"] == history[-1]["previous"]
    for before, after in itertools.pairwise(history):
        assert after["previous"] == before["version"], history  # no move lost, none interleaved
    return aliases["champion"], history


def test_two_promoters_at_once_one_wins_and_history_has_every_move(store, tmp_path):
    client, (v1, v2, v3) = _register(store, tmp_path, 3)
    registry.move_champion(client, NAME, v1, None)
    results = _race(store, [("promote", v2, v1), ("promote", v3, v1)])
    outcomes = sorted(r[2] for r in results)
    assert outcomes == ["ok", "refused"], results
    winner = next(r[1] for r in results if r[2] == "ok")
    loser = next(r for r in results if r[2] == "refused")
    assert f"champion is now {winner}" in loser[3]
    champion, history = _consistent(client)
    assert champion == winner
    assert [h["version"] for h in history] == [v1, winner]


def test_promotion_racing_a_rollback_stays_consistent(store, tmp_path):
    client, (v1, v2, v3) = _register(store, tmp_path, 3)
    registry.move_champion(client, NAME, v1, None)
    registry.move_champion(client, NAME, v2, v1)
    results = _race(store, [("promote", v3, v2), ("rollback", None, None)])
    champion, history = _consistent(client)
    done = [r for r in results if r[2] == "ok"]
    assert len(history) == 2 + len(done), (history, results)
    if [r[0] for r in done] == ["rollback"]:  # the rollback went first: the gate's verdict is stale
        assert champion == v1
    else:
        assert champion in (v2, v3)


def test_a_lock_not_taken_stops_the_move(store, tmp_path, monkeypatch):
    client, (v1, v2) = _register(store, tmp_path, 2)
    registry.move_champion(client, NAME, v1, None)
    monkeypatch.setenv("MLOPS_REGISTRY_LOCK_TIMEOUT", "1")
    with champion_lock(store, NAME):
        with pytest.raises(LockNotTakenError, match=r"held its lock.* for over 1 s"):
            registry.move_champion(client, NAME, v2, v1)
        with pytest.raises(LockNotTakenError):
            registry.rollback(client, NAME, to_version=v1)
        # Another model's lock is independent.
        with champion_lock(store, "another-model", timeout=0):
            pass
    assert str(client.get_registered_model(NAME).aliases["champion"]) == v1
    assert len(registry.history(client, NAME)) == 1
    assert registry.move_champion(client, NAME, v2, v1)["promoted"]


def _hold_lock(uri, ready):
    with champion_lock(uri, NAME):
        ready.set()
        time.sleep(600)


def test_a_killed_holder_releases_the_lock(store):
    ready = SPAWN.Event()
    holder = SPAWN.Process(target=_hold_lock, args=(store, ready))
    holder.start()
    assert ready.wait(60)
    with pytest.raises(LockNotTakenError):
        with champion_lock(store, NAME, timeout=0.5):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    with champion_lock(store, NAME, timeout=10):
        pass


def test_lock_database_is_required_for_a_tracking_server(monkeypatch):
    monkeypatch.delenv("MLOPS_REGISTRY_LOCK_URI", raising=False)
    with pytest.raises(LockNotTakenError, match="set MLOPS_REGISTRY_LOCK_URI"):
        lock_uri("http://mlflow:5000")
    monkeypatch.setenv("MLOPS_REGISTRY_LOCK_URI", "mysql://x")
    with pytest.raises(LockNotTakenError, match="postgresql:// or sqlite:///"):
        with champion_lock("http://mlflow:5000", NAME):
            pass


def test_unreachable_lock_database_is_one_line(monkeypatch, postgres):
    monkeypatch.setenv("MLOPS_REGISTRY_LOCK_URI", postgres.url("postgres").replace(str(postgres.port), "1"))
    with pytest.raises(LockNotTakenError, match="cannot reach the champion lock's database") as err:
        with champion_lock("http://mlflow:5000", NAME):
            pass
    assert "\n" not in str(err.value)
