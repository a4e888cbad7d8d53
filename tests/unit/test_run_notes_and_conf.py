"""Run parameters the DAG does not declare, and the run note written from the gate's verdict."""

import os
from unittest import mock

import pytest

from include.mlops.airflow.run_conf import undeclared_keys_message
from include.mlops.airflow.run_notes import merged_note
from include.mlops.evaluation.gate import GatePolicy, decide, run_note
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

DAG = "fraud_model_pipeline"

DECLARED = ["batch_size", "epochs", "learning_rate", "window_days"]


def test_declared_keys_pass_and_undeclared_ones_are_named_with_a_suggestion():
    assert undeclared_keys_message("d", {"epochs": 1, "window_days": 2}, DECLARED) is None
    assert undeclared_keys_message("d", None, DECLARED) is None
    assert undeclared_keys_message("d", {"epoch": 1}, DECLARED) == (
        "d: unknown run parameter 'epoch' (did you mean 'epochs'?); "
        "declared: batch_size, epochs, learning_rate, window_days"
    )
    message = undeclared_keys_message("d", {"zzz": 1, "learnin_rate": 0.1, "epochs": 2}, DECLARED)
    assert message.startswith("d: unknown run parameters 'learnin_rate' (did you mean 'learning_rate'?), 'zzz';")


def test_the_dataset_key_of_earlier_releases_points_at_the_datasets_own_dag():
    message = undeclared_keys_message(DAG, {"dataset": "credit_default"}, DECLARED)
    assert message.startswith(f"{DAG}: unknown run parameter 'dataset';") and "\n" not in message
    assert message.endswith(f"each dataset has its own DAG now: trigger the one its config names (dag_id), not {DAG}")
    assert "own DAG" not in undeclared_keys_message(DAG, {"datasets": 1}, DECLARED)


def _verdict(candidate_pr_auc, champion_pr_auc=None):
    cand = {"metrics": {"pr_auc": candidate_pr_auc}, "slices": {}}
    champ = {"version": "4", "metrics": {"pr_auc": champion_pr_auc}, "slices": {}} if champion_pr_auc else None
    return decide(cand, champ, GatePolicy(min_pr_auc=0.5, max_regression=0.01, slice_max_regression=None)).to_dict()


def test_run_note_puts_failed_checks_first_and_fits_airflow_s_note_column():
    note = run_note(_verdict(0.3, 0.6))
    lines = note.splitlines()
    assert lines[0] == "**Gate failed** (against champion v4): the candidate was not promoted."
    assert all(line.startswith("- FAIL") for line in lines[1:3]), note
    passed = run_note(_verdict(0.7))
    assert passed.startswith("**Gate passed** (against no champion)")
    long = {"passed": False, "champion_version": None, "reasons": [f"FAIL slice {i}: " + "x" * 80 for i in range(40)]}
    note = run_note(long)
    assert len(note) <= 1000 and note.endswith("\n- …")


def test_run_note_leads_with_the_promotion_decision():
    verdict = _verdict(0.7)
    promoted = run_note(verdict, {"decision": "promoted", "version": "7", "reason": "gate passed"})
    assert promoted.startswith("**Promoted**: champion is now v7.\n\n**Gate passed**")
    held = run_note(verdict, {"decision": "held", "version": "7", "reason": "backfill run: candidate registered"})
    assert held.startswith("**Not promoted (held)**: backfill run: candidate registered\n\n**Gate passed**")
    failed = _verdict(0.3)
    rejected = run_note(failed, {"decision": "rejected", "version": "7", "reason": "gate failed: FAIL floor"})
    assert rejected == run_note(failed)


def test_a_person_s_note_is_kept_above_the_pipeline_s():
    assert merged_note(None, "ours") == "ours"
    assert merged_note("ours", "ours") == "ours"
    assert merged_note("checked by ana", "ours") == "checked by ana\n\nours"
    assert merged_note("checked by ana\n\nours", "ours") == "checked by ana\n\nours"
    assert len(merged_note("x" * 990, "y" * 500)) <= 1000


@pytest.mark.integration  # runs the airflow CLI wrapper
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dags", "trigger", DAG, "-c", '{"epoch": 1}'], "unknown run parameter 'epoch' (did you mean 'epochs'?)"),
        (
            ["dags", "test", DAG, "2026-01-03", "--conf", '{"horovod_np": 0}'],
            "'horovod_np': 0 is less than the minimum of 1",
        ),
        (["backfill", "create", "--dag-id", DAG, "--dag-run-conf", '{"window_day": 2}'], "'window_day' (did you mean"),
        (["dags", "trigger", DAG, "-c", '{"partition_date": "2026-13-01"}'], "'2026-13-01' is not a 'date'"),
        (["dags", "trigger", DAG, "-c", "[1]"], "--conf must be a JSON object, got list"),
        (["dags", "trigger", DAG, "-c", "{bad"], "--conf is not valid JSON"),
    ],
)
def test_the_airflow_cli_wrapper_refuses_a_bad_conf_in_one_line(home, capsys, argv, expected):
    from devstack import cli

    with mock.patch.dict(os.environ):
        assert cli.main(["airflow", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"airflow {argv[0]} {argv[1]}: ") and expected in err[0], err


@pytest.mark.integration  # runs the airflow CLI wrapper
def test_a_good_conf_is_left_to_airflow():
    from include.mlops.airflow.run_conf import airflow_command_problem

    dags = str(ROOT / "dags")
    with mock.patch.dict(os.environ, {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}):
        assert airflow_command_problem(["dags", "trigger", DAG, "-c", '{"epochs": 3}'], dags) is None
        assert airflow_command_problem(["dags", "list"], dags) is None
        assert airflow_command_problem(["dags", "trigger", "other_dag", "-c", '{"x": 1}'], dags) is None
