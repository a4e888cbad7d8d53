"""The MLflow run of a training (rank 0 only): parameters, per-epoch metrics, the model, the result file.

The run logs to the experiment its dataset config names; the model is a pyfunc (``scoring.py``)
holding the Keras network and its feature spec, pinned to the packages that trained it.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from include.mlops.common.files import write_json_atomic
from include.mlops.trainer.env import trainer_env

log = logging.getLogger(__name__)


def start_training_run(cfg, dataset, size, threads, steps, train_rows, days, batch, validation_rows):
    import mlflow

    from include.mlops.common.tracking import ensure_experiment

    env = trainer_env()
    experiment = dataset.experiment  # the dataset config names it
    ensure_experiment(
        env.tracking_uri or mlflow.get_tracking_uri(),
        experiment,
        env.artifact_root,
    )
    mlflow.set_experiment(experiment)
    tags = {
        "mlops.job": "train",
        "mlops.dataset": dataset.name,
        # The commit baked into the trainer image (or passed by the local launcher).
        "code.git_commit": env.git_commit,
        **(cfg.tags or {}),
    }
    run_name = cfg.run_name or f"{dataset.name}-train"
    run = mlflow.start_run(run_name=run_name, tags=tags)
    # Unique in the experiment's run list: a retry or a rerun is its own row.
    mlflow.set_tag("mlflow.runName", f"{run_name}-{run.info.run_id[:6]}")
    mlflow.log_params(
        {
            "dataset": dataset.name,
            "partitions": ",".join(cfg.partitions),
            "epochs": cfg.epochs,
            "patience": cfg.patience,
            "batch_size_requested": cfg.batch_size or "fitted",
            "batch_size_per_rank": batch,
            "global_batch_size": batch * size,
            "learning_rate": cfg.learning_rate,
            "effective_learning_rate": cfg.learning_rate * math.sqrt(size),
            "pos_weight": cfg.pos_weight,
            "seed": cfg.seed,
            "horovod_size": size,
            "threads_per_rank": threads,
            "steps_per_epoch": steps,
            "train_rows": train_rows,
            "validation_rows": validation_rows,
            "holdout_fraction": dataset.holdout_fraction,
        }
    )
    return run


def finish_training_run(cfg, run, network, spec, throughput, history, size, train_rows, sample, stopped):
    import mlflow
    from mlflow.models import infer_signature

    from include.mlops.trainer.scoring import frame_to_inputs, predict_proba

    mlflow.log_metric("throughput_examples_per_sec", throughput)
    mlflow.set_tag("train.stopped", stopped[:500])
    model_uri = None
    if cfg.log_model:
        with tempfile.TemporaryDirectory() as tmp:
            net_path = Path(tmp) / "network.keras"
            spec_path = Path(tmp) / "feature_spec.json"
            network.save(net_path)
            spec_path.write_text(json.dumps(spec, indent=2))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("scoring.py")),
                artifacts={"network": str(net_path), "feature_spec": str(spec_path)},
                pip_requirements=serving_requirements(),
                signature=infer_signature(sample, predict_proba(network, frame_to_inputs(sample, spec))),
            )
            model_uri = info.model_uri
    mlflow.end_run()
    result = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": model_uri,
        "horovod_size": size,
        "examples_per_sec": throughput,
        "epochs": len(history),
        "stopped": stopped,
        "final_loss": history[-1]["train_loss"] if history else None,
        "train_rows": train_rows,
        "git_commit": trainer_env().git_commit,
    }
    if cfg.result_path:
        write_json_atomic(Path(cfg.result_path), result)
    log.info("mlflow run %s, model %s", run.info.run_id, model_uri)
    return result


def serving_requirements() -> list[str]:
    """Pins for serving the model: whichever TensorFlow distribution trained it (CPU or CUDA build)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in ("mlflow", ("tensorflow-cpu", "tensorflow"), "keras", "pandas", "numpy"):
        for name in (pkg,) if isinstance(pkg, str) else pkg:
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return pins
