"""Stage 4, the MLflow model registry: registration, champion moves under a lock, history and rollback."""
