"""Which Airflow run a step belongs to: the reference every stage keys its records by."""

from __future__ import annotations

from dataclasses import dataclass

BACKFILL = "backfill"  # the DagRunType value of a backfill's runs


@dataclass(frozen=True)
class RunRef:
    """Which Airflow run a step belongs to."""

    dag_id: str
    run_id: str

    @property
    def safe_run_id(self) -> str:
        """A folder name for this run: readable, and unique (a hash of the exact run id).

        Replacing characters alone maps distinct run ids (``a:b``, ``a_b``) to one folder;
        no dots, so no ``..``.
        """
        import hashlib

        readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.run_id)[:80]
        return f"{readable}-{hashlib.sha256(self.run_id.encode()).hexdigest()[:10]}"
