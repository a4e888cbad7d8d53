"""Show each pipeline run's outcome (the gate's verdict) as its DAG run note in the UI.

The listener lives in ``include.mlops.airflow.run_notes``; this file only registers it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.mlops.airflow.run_notes import RunNoteListener


class MlopsRunNotesPlugin(AirflowPlugin):
    name = "mlops_run_notes"
    listeners = [RunNoteListener()]  # noqa: RUF012 - AirflowPlugin declares these as class attributes
