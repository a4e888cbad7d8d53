"""Card fraud, daily: datasets/card_fraud.yaml and its suite (include/mlops/airflow/dag_factory.py)."""

from include.mlops.airflow.dag_factory import pipeline_dag

pipeline_dag("card_fraud", dag_id="fraud_model_pipeline", tags=("fraud",))
