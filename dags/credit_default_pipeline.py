"""Credit default, daily: datasets/credit_default.yaml and its suite (include/mlops/airflow/dag_factory.py)."""

from include.mlops.airflow.dag_factory import pipeline_dag

pipeline_dag("credit_default", dag_id="credit_default_pipeline", tags=("credit",))
