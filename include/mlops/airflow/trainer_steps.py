"""Trainer steps for the DAG: the same wiring whichever launcher runs them.

``trainer_step("train", ...)`` returns the step's output. With ``MLOPS_LAUNCHER=local`` it is
a task that runs the job with the local launcher (``horovodrun`` on this machine); with
``MLOPS_LAUNCHER=kubernetes`` it is a ``TrainerJobOperator`` (the provider's
KubernetesPodOperator, or an MPIJob). Only the environment is read here: parsing a DAG that
uses it does no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context

from include.mlops.airflow.links import linked_task
from include.mlops.settings import launcher_from_env

if TYPE_CHECKING:
    from datetime import timedelta

    from airflow.sdk import XComArg


def retry_delay() -> timedelta:
    """Pause before a task's retry: ``MLOPS_TASK_RETRY_DELAY`` seconds (default 30), read from the environment."""
    from datetime import timedelta

    from include.mlops.settings import task_retry_delay_seconds

    return timedelta(seconds=task_retry_delay_seconds())


def data_wait() -> timedelta:
    """How long after its data interval ends a scheduled run waits for its partition:
    ``MLOPS_DATA_WAIT_HOURS`` (default 6), read from the environment."""
    from datetime import timedelta

    from include.mlops.settings import env_number

    return timedelta(hours=env_number("MLOPS_DATA_WAIT_HOURS", "6"))


def data_poke_interval() -> float:
    """Seconds between two looks for a scheduled run's partition: ``MLOPS_DATA_POKE_SECONDS`` (default 300)."""
    from include.mlops.settings import env_number

    return max(1.0, env_number("MLOPS_DATA_POKE_SECONDS", "300"))


def wait_for_partition(dataset: str, data_interval_start, data_interval_end, run_type, partition_date) -> bool:
    """The poke of the ``wait_for_data`` sensor (reschedule mode).

    Only a scheduled run waits, for its own day's partition, until its data interval's end plus
    ``data_wait()``; then it fails with one line naming the day, or, with
    ``MLOPS_MISSING_DATA=skip`` (the embedded default), the run is skipped with that line as its
    note. Other runs go straight to ``plan``, which names any missing day at once.
    """

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from include.mlops.pipeline import partition_arrival
    from include.mlops.settings import missing_data_policy

    if getattr(run_type, "value", run_type) != "scheduled" or partition_date or data_interval_start is None:
        return True
    state, line = partition_arrival(dataset, data_interval_start.date(), data_interval_end + data_wait())
    if state == "ready":
        return True
    if state == "waiting":
        import logging

        logging.getLogger(__name__).info(line)
        return False
    if missing_data_policy() == "skip":
        set_run_note(f"**Skipped: no data.** {line}")
        raise AirflowSkipException(line)
    raise AirflowFailException(line)


def reject_undeclared_conf() -> None:
    """Fail the task, without retrying, when the run's conf has a key its DAG does not declare.

    The api-server refuses such runs up front (``include.mlops.airflow.run_conf``); this covers runs
    created by the CLI (``airflow dags trigger``, ``dags test``, ``backfill create``).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.mlops.airflow.run_conf import undeclared_keys_message

    ctx = get_current_context()
    message = undeclared_keys_message(ctx["dag"].dag_id, ctx["dag_run"].conf, ctx["dag"].params.keys())
    if message:
        raise AirflowFailException(message)


def set_run_note(text: str) -> None:
    """Show `text` as this DAG run's note in the UI when the run ends (see ``run_notes``)."""
    from include.mlops.airflow.run_notes import XCOM_KEY

    get_current_context()["ti"].xcom_push(XCOM_KEY, text)


# The task each promotion outcome continues through (an empty task that only marks the
# outcome in the grid), and what it means.
OUTCOME_TASKS = {"promoted": "champion_replaced", "rejected": "candidate_rejected", "held": "candidate_held"}
OUTCOME_DOCS = {
    "champion_replaced": "The candidate passed the gate and is now `champion`.",
    "candidate_rejected": "The candidate failed the gate (see the run's note): registered, never champion.",
    "candidate_held": "The candidate passed the gate but was not promoted: a backfill run, data older than the "
    "champion's, or no better than the champion beyond noise (see the run's note).",
}
PROMOTION_KEY = "promotion"


def push_promotion(outcome: dict) -> None:
    get_current_context()["ti"].xcom_push(PROMOTION_KEY, outcome)


def promotion() -> dict | None:
    """What ``promote`` decided for this run's candidate."""
    return get_current_context()["ti"].xcom_pull(task_ids="promote", key=PROMOTION_KEY)


def current_run():
    from include.mlops.runs import RunRef

    ctx = get_current_context()
    return RunRef(dag_id=ctx["dag"].dag_id, run_id=ctx["run_id"])


def launch_training_here(plan: dict, validation: dict, params=None) -> dict:
    """The local launcher's ``train`` task (``validation``: the edge that orders it after validate)."""
    from include.mlops.training.steps import launch_training

    return launch_training(plan, current_run(), params)


def launch_evaluation_here(plan: dict, training: dict) -> dict:
    from include.mlops.training.steps import launch_evaluation

    return launch_evaluation(plan, training, current_run())


_LOCAL = {"train": launch_training_here, "evaluate": launch_evaluation_here}


def trainer_step(job: str, *, execution_timeout: timedelta, **inputs: Any) -> XComArg:
    """The ``train`` or ``evaluate`` step of a pipeline, run by the configured launcher.

    Inputs are XComArgs of the tasks they come from, so each is an edge in the graph.
    """
    if launcher_from_env() == "kubernetes":
        from include.mlops.training.k8s.operators import TrainerJobOperator

        return TrainerJobOperator(task_id=job, job=job, job_inputs=inputs, execution_timeout=execution_timeout).output
    return linked_task(task_id=job, execution_timeout=execution_timeout)(_LOCAL[job])(**inputs)
