"""The pipeline DAG factory: one DAG per dataset, the same steps for every dataset.

``pipeline_dag("credit_default", dag_id="credit_default_pipeline")`` builds the DAG that validates,
trains, gates, registers and promotes for ``datasets/credit_default.yaml``; a DAG file is that one
call. The DAG id is passed here, not read from the config, because parsing a DAG file opens no file
(tests/dag proves it); the run's first step (``plan``) fails with one line if the config names
another DAG id, and tests/dag checks every DAG file against its config. The config also names the
registered model and the MLflow experiment, read when tasks run.

Wiring only: each task calls a function of ``include.mlops.pipeline``, imported inside the task, so
that parsing imports nothing heavy and touches no database, file or network.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, dag, task

from include.mlops.airflow.links import linked_task
from include.mlops.airflow.trainer_steps import (
    OUTCOME_DOCS,
    OUTCOME_TASKS,
    current_run,
    data_poke_interval,
    data_wait,
    promotion,
    push_promotion,
    reject_undeclared_conf,
    retry_delay,
    set_run_note,
    trainer_step,
    wait_for_partition,
)

DOC = """
### {dag_id}

One run per day of dataset `{dataset}` (`datasets/{dataset}.yaml`, suite in `expectations/`): `partition_date` if set, else the run's data interval
(scheduled and backfill runs), else the newest partition in the lake (manual runs).

0. **wait_for_data**: a scheduled run waits (sensor, reschedule mode) for its day's partition
   until its data interval's end plus `MLOPS_DATA_WAIT_HOURS` (6), then fails naming the day
   (`MLOPS_MISSING_DATA=skip`: the run is skipped, with the reason as its note).
1. **plan**: the training window (`window_days` partitions ending with the run's day) and its sha256.
2. **validate**: Great Expectations suite `expectations/<suite>.json` on every partition of the
   window and of the holdout window (below). A failing partition is quarantined (record under `<lake>/_quarantine/`), the task
   fails with every failed expectation and its unexpected count, nothing downstream runs.
3. **train**: Horovod data-parallel training with `horovod_np` ranks (empty: one per GPU, or one
   rank using every core without GPUs); rank 0 logs to MLflow.
   Returns the MLflow run id. `MLOPS_LAUNCHER=local`: `horovodrun` in the trainer virtualenv;
   `kubernetes`: a pod with `horovod_np` GPUs (KubernetesPodOperator), or an MPIJob when the
   ranks exceed one node's GPUs.
4. **evaluate**: candidate and current `champion` on the same held-out rows of the newest
   `window_days` partitions in the lake (not the candidate's own window when newer data exists).
5. **gate**: PR-AUC floor, non-regression against the champion beyond noise, per-slice checks.
6. **register**: new version of the registered model, alias `challenger`, lineage tags.
7. **promote**: alias `champion` moves to the candidate only if the gate passed, the run is not a
   backfill (unless `promote_from_backfill`) and its window does not end before the champion's;
   the decision is recorded once on the version (`promotion.decision`), so a rerun changes nothing.
   The run goes on through the task named after the outcome, so the grid shows it:
   **champion_replaced**, **candidate_rejected** (gate failed) or **candidate_held**.
8. **summarize**: what happened, as one JSON (XCom and `.local/runs/`).
"""


def pipeline_params() -> dict[str, Param]:
    """The run parameters of every pipeline DAG: the trigger form's fields, validated on each run."""
    return {
        "partition_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day to train for",
            description="YYYY-MM-DD. Empty: the run's data interval (scheduled and backfill runs), else the "
            "newest partition in the lake.",
        ),
        "window_days": Param(
            3,
            type="integer",
            minimum=1,
            maximum=30,
            title="Training window (days)",
            description="How many daily partitions, ending with the day above, to validate and train on.",
        ),
        "horovod_np": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=64,
            title="Horovod ranks",
            description="Data-parallel workers, one per GPU; beyond one node's GPUs, an MPIJob. Empty: what the "
            "hardware suits: a node's GPUs on Kubernetes, the local GPUs, or one rank using every core on a "
            "machine without GPUs (ranks sharing CPUs only add allreduce).",
        ),
        "epochs": Param(
            30,
            type="integer",
            minimum=1,
            maximum=200,
            title="Epochs (at most)",
            description="A cap on passes over the training rows: training stops earlier when the validation loss "
            "(a tenth of the training rows, never the holdout) has not improved for `patience` epochs.",
        ),
        "patience": Param(
            3,
            type="integer",
            minimum=0,
            maximum=50,
            title="Early-stopping patience (epochs)",
            description="Stop after this many epochs without a better validation loss, keeping the best epoch's "
            "weights; 0 trains every epoch up to the cap.",
        ),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=16,
            maximum=65536,
            title="Batch size per rank",
            description="Rows per step on each rank; the global batch is this times the ranks. Empty: fitted to "
            "the data (512, or smaller on a small table so that an epoch has at least 50 steps).",
        ),
        "learning_rate": Param(
            0.002,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            title="Learning rate",
            description="Adam's base rate; the trainer scales it by the square root of the ranks.",
        ),
        "min_pr_auc": Param(
            0.40,
            type="number",
            minimum=0,
            maximum=1,
            title="Gate: PR-AUC floor",
            description="A candidate below this PR-AUC on the held-out rows is never promoted.",
        ),
        "max_regression": Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            title="Gate: noise tolerance",
            description="How far below the champion's PR-AUC a candidate may score (noise); to replace the "
            "champion on data no newer than its, a candidate must beat it by more than this.",
        ),
        "slice_max_regression": Param(
            0.05,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Gate: per-slice tolerance",
            description="Allowed PR-AUC drop per slice (merchant category, channel...); empty disables.",
        ),
        "force_retrain": Param(
            False,
            type="boolean",
            title="Force retraining",
            description="Train from scratch even if this run already trained (never resumes a checkpoint).",
        ),
        "promote_from_backfill": Param(
            False,
            type="boolean",
            title="Backfill may promote",
            description="Let a backfill run move champion (default: backfills register candidates only).",
        ),
    }


def pipeline_dag(
    dataset: str,
    dag_id: str,
    *,
    schedule: str = "0 0 * * *",
    start_date: datetime = datetime(2026, 1, 1),
    tags: tuple[str, ...] = (),
) -> DAG:
    """The daily pipeline of `dataset` (``datasets/<dataset>.yaml``) as DAG `dag_id`, one run per day."""

    @dag(
        dag_id=dag_id,
        schedule=CronDataIntervalTimetable(schedule, timezone="UTC"),
        start_date=start_date,
        catchup=False,
        # Runs are safe side by side (GX takes turns, champion moves under a lock), so a manual run is
        # not held behind a scheduled one that is only waiting for its data.
        max_active_runs=3,
        # "dataset:<name>" filters the DAG list by dataset and ties the DAG to its config (tests/dag).
        tags=["ml", f"dataset:{dataset}", *tags, "horovod", "great-expectations", "mlflow", "strict-params"],
        doc_md=DOC.format(dag_id=dag_id, dataset=dataset),
        default_args={"owner": "ml-platform", "retries": 1, "retry_delay": retry_delay()},
        params=pipeline_params(),
    )
    def pipeline():
        @task
        def plan(data_interval_start=None, dag_run=None, params=None) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from include.mlops.common.dataset import DatasetConfigError, PartitionNotFoundError
            from include.mlops.pipeline import plan_window

            reject_undeclared_conf()
            try:
                return plan_window(
                    dataset,
                    params["partition_date"],
                    params["window_days"],
                    data_interval_start,
                    run_type=dag_run.run_type,
                    dag_id=dag_run.dag_id,
                )
            except (PartitionNotFoundError, DatasetConfigError) as exc:  # retrying in 30 s fixes neither
                raise AirflowFailException(str(exc)) from exc

        @linked_task(retries=0)
        def validate(plan: dict) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from include.mlops.pipeline import validate_windows
            from include.mlops.validation.suite import DataValidationError

            try:
                return validate_windows(plan, current_run())
            except DataValidationError as exc:
                raise AirflowFailException(str(exc)) from exc

        @task
        def gate(evaluation: dict, training: dict, params=None) -> dict:
            from include.mlops.evaluation.gate import run_note
            from include.mlops.pipeline import apply_gate

            verdict = apply_gate(evaluation, training, params)
            set_run_note(run_note(verdict))
            return verdict

        @linked_task
        def register(plan: dict, validation: dict, training: dict, verdict: dict) -> dict:
            from include.mlops.registry.promotion import register_version

            return register_version(plan, validation, training, verdict, current_run())

        @task.branch
        def promote(registration: dict, verdict: dict, dag_run=None, params=None) -> str:
            """Move champion or not; the run continues through the task named after the outcome."""
            from airflow.sdk.exceptions import AirflowFailException

            from include.mlops.evaluation.gate import run_note
            from include.mlops.registry.champion import StaleVerdictError
            from include.mlops.registry.promotion import decide_promotion

            try:
                outcome = decide_promotion(registration, verdict, dag_run.run_type, params)
            except StaleVerdictError as exc:  # retrying cannot help: the gate must look again
                raise AirflowFailException(str(exc)) from exc
            set_run_note(run_note(verdict, outcome))
            push_promotion(outcome)
            return OUTCOME_TASKS[outcome["decision"]]

        @task(trigger_rule="none_failed_min_one_success")
        def summarize(plan: dict, validation: dict, training: dict, verdict: dict, registration: dict) -> dict:
            from include.mlops.pipeline import summarize_run

            # What promote decided is read from its XCom: promote is a branch, and a branch skips every
            # direct downstream task it does not choose, so summarize cannot take its output as an argument.
            return summarize_run(current_run(), plan, validation, training, verdict, registration, promotion())

        @task.sensor(
            mode="reschedule",
            poke_interval=data_poke_interval(),
            timeout=(data_wait() + timedelta(hours=1)).total_seconds(),  # backstop; the poke decides first
            retries=0,
        )
        def wait_for_data(data_interval_start=None, data_interval_end=None, dag_run=None, params=None) -> bool:
            return wait_for_partition(
                dataset, data_interval_start, data_interval_end, dag_run.run_type, params["partition_date"]
            )

        # Each task takes what it uses as arguments, so the graph shows every dependency there is.
        planned = plan()
        validated = validate(planned)
        trained = trainer_step("train", plan=planned, validation=validated, execution_timeout=timedelta(hours=6))
        evaluated = trainer_step("evaluate", plan=planned, training=trained, execution_timeout=timedelta(hours=1))
        verdict = gate(evaluated, trained)
        registration = register(planned, validated, trained, verdict)
        decided = promote(registration, verdict)
        # What became of the candidate, as a task of its own in the grid: one runs, the others skip.
        outcomes = [EmptyOperator(task_id=task_id, doc_md=doc) for task_id, doc in OUTCOME_DOCS.items()]
        wait_for_data() >> planned
        decided >> outcomes >> summarize(planned, validated, trained, verdict, registration)

    return pipeline()
