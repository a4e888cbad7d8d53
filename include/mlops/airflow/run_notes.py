"""The DAG run's note in the Airflow UI, written by the pipeline's own tasks.

A task cannot write its run's note through the Task SDK, so it pushes the text as the XCom
``run_note``; the ``mlops_run_notes`` plugin's listener, which runs in the scheduler (or in
``airflow dags test``) when the run finishes, copies the newest such XCom onto the run. A
note a person already wrote is kept: the pipeline's note goes below it.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

XCOM_KEY = "run_note"
NOTE_LIMIT = 1000


def merged_note(existing: str | None, ours: str) -> str:
    if not existing or existing == ours:
        return ours[:NOTE_LIMIT]
    if existing.endswith(ours):
        return existing
    room = NOTE_LIMIT - len(existing) - 2
    return existing if room <= 0 else f"{existing}\n\n{ours[:room]}"


def apply_run_note(dag_run) -> str | None:
    """Copy the run's newest ``run_note`` XCom onto the run's note; returns the note set."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return None
    query = (
        select(XComModel)
        .where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == XCOM_KEY,
        )
        .order_by(XComModel.timestamp.desc())
        .limit(1)
    )
    row = session.scalar(query)
    text = XComModel.deserialize_value(row) if row is not None else None
    if not isinstance(text, str) or not text:
        return None
    dag_run.note = merged_note(dag_run.note, text)
    return dag_run.note


class RunNoteListener:
    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        self._apply(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        self._apply(dag_run)

    @staticmethod
    def _apply(dag_run) -> None:
        try:
            apply_run_note(dag_run)
        except Exception:  # a note must never change how the run ends
            log.exception("could not set the note of %s", dag_run.run_id)
