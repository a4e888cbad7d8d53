"""Registry helpers against real MLflow stores: SQLite (embedded default) and PostgreSQL (production)."""

import json

import mlflow
import pytest

from include.mlops.registry import champion as registry

pytestmark = pytest.mark.integration

NAME = "fraud-detector"


@pytest.fixture
def client(mlflow_store):
    """The embedded SQLite store, and PostgreSQL as production runs it (a real server)."""
    mlflow.set_tracking_uri(mlflow_store)
    return mlflow.MlflowClient()


def new_run(client, tmp_path):
    exp = client.get_experiment_by_name("t")
    run = client.create_run(exp.experiment_id)
    src = tmp_path / run.info.run_id
    src.mkdir()
    (src / "MLmodel").write_text("artifact_path: model\n")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, src.as_uri()


def test_register_is_idempotent_per_run(client, tmp_path):
    run_id, uri = new_run(client, tmp_path)
    v1, created1 = registry.register_candidate(client, NAME, uri, run_id, {"data.sha256": "abc"})
    v2, created2 = registry.register_candidate(client, NAME, uri, run_id, {"data.sha256": "abc", "gate.passed": "true"})
    assert (created1, created2) == (True, False)
    assert v1.version == v2.version
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1
    assert v2.tags["gate.passed"] == "true"
    assert str(registry.get_alias(client, NAME, "challenger").version) == str(v1.version)
    assert registry.get_alias(client, NAME, "champion") is None


def test_promote_compare_and_set_history_and_rollback(client, tmp_path):
    r1, u1 = new_run(client, tmp_path)
    r2, u2 = new_run(client, tmp_path)
    v1, _ = registry.register_candidate(client, NAME, u1, r1, {"gate.passed": "true"})
    out = registry.move_champion(client, NAME, v1.version, expected_champion=None)
    assert out["promoted"] and out["previous"] is None
    # Re-running the same promotion is a no-op.
    assert registry.move_champion(client, NAME, v1.version, expected_champion=None)["already_champion"]

    v2, _ = registry.register_candidate(client, NAME, u2, r2, {})
    # A verdict computed before v1 became champion is stale: refuse, leave champion alone.
    with pytest.raises(registry.StaleVerdictError, match="champion is now 1"):
        registry.move_champion(client, NAME, v2.version, expected_champion=None)
    assert str(registry.get_alias(client, NAME, "champion").version) == str(v1.version)

    registry.move_champion(client, NAME, v2.version, expected_champion=v1.version, reason="better")
    assert str(registry.get_alias(client, NAME, "champion").version) == str(v2.version)
    hist = registry.history(client, NAME)
    assert [h["version"] for h in hist] == ["1", "2"]
    assert hist[1]["previous"] == "1" and hist[1]["reason"] == "better"

    back = registry.rollback(client, NAME)
    assert back == {"champion": "1", "previous": "2"}
    assert str(registry.get_alias(client, NAME, "champion").version) == "1"
    assert registry.history(client, NAME)[-1]["action"] == "rollback"
    assert str(registry.get_alias(client, NAME, "previous-champion").version) == "2"


def test_rollback_errors(client, tmp_path):
    r1, u1 = new_run(client, tmp_path)
    v1, _ = registry.register_candidate(client, NAME, u1, r1, {})
    with pytest.raises(registry.RegistryError, match="no champion to roll back"):
        registry.rollback(client, NAME)
    registry.move_champion(client, NAME, v1.version, None)
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        registry.rollback(client, NAME)
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.rollback(client, NAME, to_version="42")
    assert str(registry.get_alias(client, NAME, "champion").version) == "1"


def test_alias_lookup_fails_closed_on_registry_errors(client, tmp_path):
    """Only "does not exist" means no champion; any other error stops the caller."""
    from mlflow.exceptions import MlflowException

    assert registry.get_alias(client, "no-such-model", "champion") is None
    run_id, uri = new_run(client, tmp_path)
    registry.register_candidate(client, NAME, uri, run_id, {})
    assert registry.get_alias(client, NAME, "champion") is None  # model exists, alias does not

    class Broken:
        def get_registered_model(self, name):
            raise MlflowException("invalid name", error_code="INVALID_PARAMETER_VALUE")

    with pytest.raises(MlflowException, match="invalid name"):
        registry.get_alias(Broken(), NAME, "champion")


def test_rollbacks_walk_back_and_refuse_ungated_versions(client, tmp_path):
    versions = []
    for _ in range(3):
        run_id, uri = new_run(client, tmp_path)
        v, _ = registry.register_candidate(client, NAME, uri, run_id, {"gate.passed": "true"})
        registry.move_champion(client, NAME, v.version, versions[-1] if versions else None)
        versions.append(str(v.version))
    assert registry.rollback(client, NAME) == {"champion": versions[1], "previous": versions[2]}
    # The second rollback goes further back, not to the version the first one removed.
    assert registry.rollback(client, NAME) == {"champion": versions[0], "previous": versions[1]}
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        registry.rollback(client, NAME)
    assert str(registry.get_alias(client, NAME, "champion").version) == versions[0]

    run_id, uri = new_run(client, tmp_path)
    ungated, _ = registry.register_candidate(client, NAME, uri, run_id, {"gate.passed": "false"})
    with pytest.raises(registry.RegistryError, match="never passed a gate"):
        registry.rollback(client, NAME, to_version=ungated.version)
    assert str(registry.get_alias(client, NAME, "champion").version) == versions[0]
    out = registry.rollback(client, NAME, to_version=ungated.version, force=True)
    assert out["champion"] == str(ungated.version)
    assert registry.history(client, NAME)[-1]["forced"] is True


def _cli_errors(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if "mlflow.store.db" not in line]  # store creation


def test_registry_cli_errors_are_one_line(home, capsys):
    assert registry.main(["rollback", "--name", "no-such-model"]) == 2
    assert _cli_errors(capsys) == ["registry rollback: no registered model named 'no-such-model' (registered: none)"]
    assert registry.main(["show", "--name", "nope"]) == 2
    assert _cli_errors(capsys) == ["registry show: no registered model named 'nope' (registered: none)"]
    assert registry.main(["show", "--dataset", "nope"]) == 2
    err = _cli_errors(capsys)
    assert (
        len(err) == 1 and err[0].startswith("registry show: no dataset config ") and "(datasets: card_fraud" in err[0]
    )


def test_registry_cli_reads_the_model_name_from_the_dataset_config(home, capsys, tmp_path):
    from include.mlops.common.dataset import load_dataset_config

    client = mlflow.MlflowClient(home.mlflow_tracking_uri)
    mlflow.set_tracking_uri(home.mlflow_tracking_uri)
    client.create_experiment("t")
    cfg = load_dataset_config(home.dataset_config_path("card_fraud"))
    run_id, uri = new_run(client, tmp_path)
    version, _ = registry.register_candidate(
        client, cfg.registered_model, uri, run_id, {}, description=cfg.registered_model_description
    )
    assert client.get_registered_model(cfg.registered_model).description == cfg.registered_model_description
    capsys.readouterr()
    assert registry.main(["show"]) == 0  # --dataset card_fraud by default
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == cfg.registered_model
    assert {k: str(v) for k, v in shown["aliases"].items()} == {"challenger": str(version.version)}
    # --name overrides, and names what the registry holds when it is not there.
    assert registry.main(["show", "--name", "other"]) == 2
    assert _cli_errors(capsys) == [
        f"registry show: no registered model named 'other' (registered: {cfg.registered_model})"
    ]


def test_forty_promotions_keep_every_write_small(client, tmp_path):
    """MLflow's SQL stores declare tag values VARCHAR(5000) (enforced by PostgreSQL): no growing tag."""
    previous = None
    for _ in range(40):
        run_id, uri = new_run(client, tmp_path)
        v, _ = registry.register_candidate(client, NAME, uri, run_id, {"gate.passed": "true"})
        registry.move_champion(client, NAME, v.version, previous, reason="PASS floor: ...; " * 400)  # 6800 characters
        if previous is not None:
            assert str(registry.get_alias(client, NAME, "previous-champion").version) == previous
        previous = str(v.version)
    tags = client.get_registered_model(NAME).tags
    assert max(len(value) for value in tags.values()) < 5000
    assert [h["version"] for h in registry.history(client, NAME)] == [str(i) for i in range(1, 41)]
    assert str(registry.get_alias(client, NAME, "champion").version) == "40"


def test_history_reads_the_legacy_single_tag_first(client, tmp_path):
    run_id, uri = new_run(client, tmp_path)
    v, _ = registry.register_candidate(client, NAME, uri, run_id, {"gate.passed": "true"})
    legacy = [{"version": "1", "at": "2026-01-01T00:00:00+00:00", "action": "promote", "previous": None}]
    client.set_registered_model_tag(NAME, registry.HISTORY_TAG, json.dumps(legacy))
    registry.move_champion(client, NAME, v.version, None)
    history = registry.history(client, NAME)
    assert history[0]["at"] == legacy[0]["at"] and len(history) == 2


def _candidate(client, tmp_path, interval_end, gated="true"):
    run_id, uri = new_run(client, tmp_path)
    tags = {"gate.passed": gated, "data.interval_end": interval_end, "gate.champion_version": ""}
    version, _ = registry.register_candidate(client, NAME, uri, run_id, tags)
    return run_id, uri, str(version.version)


def test_an_older_window_never_replaces_the_champion(client, tmp_path):
    _, _, v1 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    registry.move_champion(client, NAME, v1, None)
    _, _, v2 = _candidate(client, tmp_path, "2026-01-03T00:00:00+00:00")  # a backfill's day
    out = registry.move_champion(client, NAME, v2, v1)
    assert not out["promoted"] and out["decided"]["decision"] == "held"
    assert "before champion 1's" in out["decided"]["reason"]
    assert str(registry.get_alias(client, NAME, "champion").version) == v1
    assert len(registry.history(client, NAME)) == 1


def test_a_decided_version_is_left_alone_by_a_rerun(client, tmp_path):
    run_id, uri, v1 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    registry.move_champion(client, NAME, v1, None)
    decision = registry.recorded_decision(client.get_model_version(NAME, v1))
    assert decision["decision"] == "promoted"
    _, _, v2 = _candidate(client, tmp_path, "2026-01-06T00:00:00+00:00")
    registry.move_champion(client, NAME, v2, v1)
    before = client.get_model_version(NAME, v1).tags
    # The rerun of v1's run: registration and promotion change no tag and no alias.
    again, created = registry.register_candidate(
        client, NAME, uri, run_id, {"gate.passed": "false", "gate.champion_version": v2}
    )
    assert not created and str(again.version) == v1
    assert client.get_model_version(NAME, v1).tags == before
    assert str(registry.get_alias(client, NAME, "challenger").version) == v2
    out = registry.move_champion(client, NAME, v1, v2)
    assert not out["promoted"] and out["decided"] == decision
    assert str(registry.get_alias(client, NAME, "champion").version) == v2


def test_backfill_runs_register_but_never_promote_unless_asked(client, tmp_path):
    from include.mlops.registry.promotion import decide_promotion
    from include.mlops.settings import get_settings

    home = get_settings()  # the store the client fixture chose

    verdict = {"passed": True, "champion_version": None, "reasons": ["PASS floor: 0.5 >= 0.4"]}
    _, _, v1 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    held = decide_promotion({"name": NAME, "version": v1}, verdict, "backfill", {}, home)
    assert held["decision"] == "held" and "backfill run" in held["reason"]
    assert registry.get_alias(client, NAME, "champion") is None
    # The decision is made once: the same run asking again changes nothing.
    again = decide_promotion({"name": NAME, "version": v1}, verdict, "backfill", {"promote_from_backfill": True}, home)
    assert again["decision"] == "held" and registry.get_alias(client, NAME, "champion") is None

    _, _, v2 = _candidate(client, tmp_path, "2026-01-06T00:00:00+00:00")
    allowed = decide_promotion(
        {"name": NAME, "version": v2}, verdict, "backfill", {"promote_from_backfill": True}, home
    )
    assert allowed["decision"] == "promoted" and allowed["promoted"]
    assert str(registry.get_alias(client, NAME, "champion").version) == v2

    _, _, v3 = _candidate(client, tmp_path, "2026-01-07T00:00:00+00:00", gated="false")
    failed = {"passed": False, "champion_version": v2, "reasons": ["FAIL floor: 0.1 < 0.4", "PASS x"]}
    rejected = decide_promotion({"name": NAME, "version": v3}, failed, "manual", {}, home)
    assert rejected["decision"] == "rejected" and rejected["reason"] == "gate failed: FAIL floor: 0.1 < 0.4"


def test_no_better_beyond_noise_on_data_no_newer_keeps_the_champion(client, tmp_path):
    _, _, v1 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    registry.move_champion(client, NAME, v1, None)
    # A same-day rerun that scored the same: the champion stays.
    _, _, v2 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    out = registry.move_champion(client, NAME, v2, v1, beats_champion=False)
    assert out["decided"]["decision"] == "held" and "beyond noise" in out["decided"]["reason"]
    # Better beyond noise on the same data: promoted.
    _, _, v3 = _candidate(client, tmp_path, "2026-01-05T00:00:00+00:00")
    assert registry.move_champion(client, NAME, v3, v1, beats_champion=True)["promoted"]
    # As good (within noise) but trained on newer data: promoted.
    _, _, v4 = _candidate(client, tmp_path, "2026-01-06T00:00:00+00:00")
    assert registry.move_champion(client, NAME, v4, v3, beats_champion=False)["promoted"]


def test_beats_champion_reads_the_gate_s_comparison():
    from include.mlops.evaluation.gate import GatePolicy, decide
    from include.mlops.registry.promotion import beats_champion

    policy = GatePolicy(min_pr_auc=0.1, max_regression=0.01, slice_max_regression=None)

    def verdict(cand, champ):
        champion = {"version": "1", "metrics": {"pr_auc": champ}} if champ is not None else None
        return decide({"metrics": {"pr_auc": cand}}, champion, policy).to_dict()

    assert beats_champion(verdict(0.50, None)) is None
    assert beats_champion(verdict(0.505, 0.50)) is False  # within noise
    assert beats_champion(verdict(0.495, 0.50)) is False
    assert beats_champion(verdict(0.52, 0.50)) is True
