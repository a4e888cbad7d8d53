"""Shared by the control plane and the trainer image: dataset configs, file helpers, the MLflow client, card-number detection.

Standard library, PyYAML, pydantic and MLflow only: nothing here imports Airflow, GX or another package of ``include.mlops``.
"""
