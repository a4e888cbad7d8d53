"""Horovod data-parallel training of a dataset's binary classifier (see model.py).

The dataset config names the features and the label; the label is mapped to 0/1 by the
config's rule (``DatasetConfig.binary_labels``), so the network learns the probability of the
positive value.

Run under ``horovodrun -np N``; every rank runs this same program:

- rank r reads only its shard of the window: a contiguous 1/N of its parquet row groups
  (shards.py), kept in memory when it fits ``memory_rows``, else streamed every epoch; held-out
  rows are dropped on reading and never reach training;
- normalisation statistics are summed over all ranks, so every rank builds the same network;
- variables are broadcast from rank 0, gradients are averaged with Horovod allreduce;
- every rank takes the same number of steps per epoch (the smallest shard decides);
- rank 0 alone checkpoints each epoch and logs params, per-epoch metrics, throughput and the
  model to MLflow, then writes the result file (MLflow run id, model URI) for the launcher.

Keras 3 variables are not accepted by ``horovod.tensorflow.keras`` nor by
``DistributedGradientTape`` (horovod issue 4290), so this uses the low-level API on the
underlying ``tf.Variable`` objects (``v.value``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from include.mlops.trainer.checkpoints import resume_epoch, save_checkpoint, training_key
from include.mlops.trainer.env import trainer_env
from include.mlops.trainer.mlflow_run import finish_training_run, start_training_run
from include.mlops.trainer.placement import collective, configure_threads, pin_device, thread_affinities

log = logging.getLogger("mlops.trainer")
DEFAULT_BATCH = 512  # rows per step on each rank when the batch is fitted to the data


@dataclass
class TrainConfig:
    dataset_config: Path
    partitions: list[str]
    lake: Path
    epochs: int = 30  # a cap: training stops earlier when the validation loss stops improving
    batch_size: int | None = None  # None: fitted to the data (DEFAULT_BATCH at most); a number is used as is
    patience: int = 3  # epochs without a better validation loss before stopping (0: never stop early)
    validation_fraction: float = 0.1  # of the training rows (never the holdout), to decide when to stop
    min_steps_per_epoch: int = 50  # the batch shrinks on small tables so an epoch has this many steps
    learning_rate: float = 2e-3
    pos_weight: float = 2.0
    seed: int = 42
    threads: int = 0
    checkpoint_dir: Path | None = None
    result_path: Path | None = None
    run_name: str | None = None
    tags: dict[str, str] | None = None
    max_steps_per_epoch: int = 0
    log_model: bool = True
    bind_cores: bool = False
    memory_rows: int = 1_000_000  # rows a rank keeps in memory; a bigger shard streams from parquet


def run_training(cfg: TrainConfig) -> dict[str, Any] | None:
    import horovod.tensorflow as hvd
    import keras
    import pandas as pd
    import tensorflow as tf

    from include.mlops.common.dataset import LabelError, load_dataset_config, parse_date
    from include.mlops.trainer.model import build_network, feature_spec
    from include.mlops.trainer.scoring import keras_name, predict_proba
    from include.mlops.trainer.shards import ShardFeed, plan_shards
    from include.mlops.trainer.stopping import EarlyStopping

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    device = pin_device(hvd.local_rank())  # before any TF op creates the runtime context
    log.info(
        "horovod rank %d/%d local_rank %d device %s collective %s",
        rank,
        size,
        hvd.local_rank(),
        device,
        collective(device),
    )
    threads = configure_threads(cfg.threads, hvd.local_size(), hvd.local_rank(), cfg.bind_cores)
    keras.utils.set_random_seed(cfg.seed)

    dataset = load_dataset_config(cfg.dataset_config)
    spec = feature_spec(dataset)
    days = [parse_date(p) for p in cfg.partitions]
    files = [f for day in days for f in dataset.partition_files(cfg.lake, day)]
    # This rank's rows only: a contiguous 1/N of the window's row groups (shards.py).
    pieces = plan_shards(files, size)[rank]
    # Rows that decide when to stop: carved from the training rows by a hash of the id (the
    # holdout stays untouched for the gate).
    early = cfg.patience > 0 and cfg.validation_fraction > 0
    shard = ShardFeed(
        dataset,
        spec,
        pieces,
        validation_fraction=cfg.validation_fraction if early else 0.0,
        validation_salt=f"{dataset.holdout_salt}:stop",
        pos_weight=cfg.pos_weight,
        memory_rows=cfg.memory_rows,
    )
    problem = shard.scan()
    # A label that is neither class fails every rank alike (LabelError), before any other
    # collective call, though only the rank whose shard holds it has seen it.
    problems = [p for p in hvd.allgather_object(problem or "") if p]
    if problems:
        raise LabelError(problems[0])
    log.info(
        "rank %d reads %d row group piece(s), %d training and %d validation rows (%s)",
        rank,
        len(pieces),
        shard.fit_rows,
        shard.validation_rows,
        "kept in memory" if shard.in_memory else f"streamed from parquet, {cfg.memory_rows} rows buffered",
    )

    n_feat = len(spec["numeric"])
    mean, variance, fit_rows, validation_rows = _global_statistics(shard, n_feat)

    network = build_network(spec, mean.astype(np.float32), variance.astype(np.float32), seed=cfg.seed)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate * math.sqrt(size))
    optimizer.build(network.trainable_variables)
    loss_fn = keras.losses.BinaryCrossentropy()

    # Resume from the newest checkpoint (a retried task continues where it stopped): rank 0
    # restores weights and optimizer state, then every rank takes its start epoch and
    # variables from rank 0, so the ranks cannot disagree about where they are.
    start_epoch = 0
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    key = training_key(cfg, size)
    if rank == 0 and ckpt_dir:
        start_epoch = resume_epoch(ckpt_dir, key, network, optimizer)
    start_epoch = int(hvd.broadcast(tf.constant(start_epoch), root_rank=0, name="start_epoch"))

    hvd.broadcast_variables([v.value for v in network.variables], root_rank=0)
    hvd.broadcast_variables([v.value for v in optimizer.variables], root_rank=0)

    batch, steps = _batch_and_steps(cfg, shard.fit_rows)

    trainable = network.trainable_variables
    in_memory = shard.fit_arrays() if shard.in_memory else None
    batch_signature = (
        {
            name: tf.TensorSpec(
                (None, n_feat) if name == "numeric" else (None, 1), tf.float32 if name == "numeric" else tf.string
            )
            for name in ["numeric", *[keras_name(c) for c in spec["categorical"]]]
        },
        tf.TensorSpec((None, 1), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )

    @tf.function
    def train_step(batch_inputs, batch_labels, batch_weights):
        with tf.GradientTape() as tape:
            probs = network(batch_inputs, training=True)
            loss = loss_fn(batch_labels, probs, sample_weight=batch_weights)
        grads = tape.gradient(loss, [v.value for v in trainable])
        grads = [tf.convert_to_tensor(g) for g in grads]  # embeddings give IndexedSlices
        grads = hvd.grouped_allreduce(grads, op=hvd.Average)
        optimizer.apply_gradients(zip(grads, trainable, strict=True))
        return loss

    @tf.function
    def train_epoch(batches):
        # The whole epoch in one graph: no Python dispatch and no host round trip per step.
        total = tf.constant(0.0, tf.float64)
        count = tf.constant(0.0, tf.float64)
        for batch_inputs, batch_labels, batch_weights in batches:
            total += tf.cast(train_step(batch_inputs, batch_labels, batch_weights), tf.float64)
            count += 1.0
        return total / count

    def validation_loss() -> float:
        """Log loss on the validation rows of every rank (allreduced): the same number everywhere."""
        local = np.zeros(2)
        for val_inputs, val_labels in shard.validation_parts():
            if len(val_labels):
                p = np.clip(predict_proba(network, val_inputs).astype(np.float64), 1e-7, 1 - 1e-7)
                local += [-(val_labels * np.log(p) + (1 - val_labels) * np.log(1 - p)).sum(), len(p)]
        total = hvd.allreduce(tf.constant(local), op=hvd.Sum).numpy()
        return float(total[0] / total[1]) if total[1] else float("nan")

    stopping = EarlyStopping(patience=cfg.patience if early else 0)
    if rank == 0 and start_epoch and ckpt_dir:
        stopping.restore(json.loads((ckpt_dir / "latest.json").read_text()).get("early_stopping"))
    state = hvd.broadcast(tf.constant([stopping.best_loss, stopping.best_epoch, stopping.waited], tf.float64), 0)
    stopping.best_loss, stopping.best_epoch, stopping.waited = float(state[0]), int(state[1]), int(state[2])
    best_weights = None  # the best epoch's weights, when it is one of this session's

    run = None
    if rank == 0:
        run = start_training_run(cfg, dataset, size, threads, steps, fit_rows, days, batch, validation_rows)
    history: list[dict[str, float]] = []
    examples_per_epoch = steps * batch * size
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        if stopping.should_stop:  # a resumed run that had already decided to stop
            epoch -= 1
            break
        if shard.in_memory:
            data = (
                tf.data.Dataset.from_tensor_slices(in_memory)
                .shuffle(shard.fit_rows, seed=cfg.seed + epoch - 1, reshuffle_each_iteration=False)
                .batch(batch, drop_remainder=True)
            )
        else:
            epoch_seed = [cfg.seed, epoch, rank]
            data = tf.data.Dataset.from_generator(
                lambda seed=epoch_seed: shard.stream(seed, batch), output_signature=batch_signature
            )
        data = data.take(steps).prefetch(2)
        t0 = time.perf_counter()
        mean_loss = float(hvd.allreduce(train_epoch(data), op=hvd.Average))
        seconds = time.perf_counter() - t0
        record = {
            "train_loss": mean_loss,
            "epoch_seconds": seconds,
            "examples_per_sec": examples_per_epoch / seconds,
        }
        if early:
            record["val_loss"] = validation_loss()
            if stopping.update(epoch, record["val_loss"]):
                best_weights = [np.array(w) for w in network.get_weights()]
        history.append(record)
        if rank == 0:
            import mlflow

            mlflow.log_metrics(record, step=epoch)
            log.info(
                "epoch %d/%d loss=%.4f%s %.0f examples/s (%d ranks)",
                epoch,
                cfg.epochs,
                mean_loss,
                f" val_loss={record['val_loss']:.4f}" if early else "",
                record["examples_per_sec"],
                size,
            )
            if ckpt_dir:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                save_checkpoint(ckpt_dir, epoch, network, optimizer, steps, key, stopping.state() if early else None)
        if stopping.should_stop:
            break

    stopped = stopping.reason(epoch, cfg.epochs) if early else f"trained {cfg.epochs} epochs (no early stopping)"
    if early and stopping.best_epoch and stopping.best_epoch != epoch:
        # Keep the best epoch's weights: this session's copy, or (resumed) its checkpoint.
        if best_weights is not None:
            network.set_weights(best_weights)
        else:
            if rank == 0 and ckpt_dir:
                network.load_weights(ckpt_dir / f"epoch-{stopping.best_epoch:03d}.weights.h5")
            hvd.broadcast_variables([v.value for v in network.variables], root_rank=0)
        stopped += f"; kept epoch {stopping.best_epoch}'s weights"
    log.info("training stopped: %s", stopped)

    digest_dir = trainer_env().digest_dir
    if digest_dir:  # tests: identical digests prove the ranks stayed in sync
        _write_digest(digest_dir, network, shard, steps, pieces, files)
    if rank != 0:
        return None
    # Throughput after warm-up: the first epoch includes graph tracing.
    steady = [h["examples_per_sec"] for h in history[1:]] or [h["examples_per_sec"] for h in history]
    throughput = statistics.median(steady) if steady else 0.0
    sample = shard.sample.copy()
    # Declare the widest types in the signature (long/double): MLflow then accepts narrower
    # integer and float columns too, so a producer writing int32 or int64 both score.
    for col in sample.columns:
        if pd.api.types.is_integer_dtype(sample[col]):
            sample[col] = sample[col].astype("int64")
        elif pd.api.types.is_float_dtype(sample[col]):
            sample[col] = sample[col].astype("float64")
    return finish_training_run(cfg, run, network, spec, throughput, history, size, fit_rows, sample, stopped)


def _write_digest(digest_dir: Path, network, shard, steps: int, pieces, files: list[Path]) -> None:
    """This rank's final weights, hashed, with what it read and used (``MLOPS_TRAINER_DIGEST_DIR``)."""
    import horovod.tensorflow as hvd

    from include.mlops.trainer.shards import bytes_to_read, plan_shards

    h = hashlib.sha256()
    for v in network.weights:
        h.update(np.ascontiguousarray(np.asarray(v.numpy())).tobytes())
    digest_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "rank": hvd.rank(),
        "size": hvd.size(),
        "weights_sha256": h.hexdigest(),
        "rows": shard.fit_rows,
        "steps": steps,
        "in_memory": shard.in_memory,
        "bytes_read": bytes_to_read(pieces, shard.columns),
        "window_bytes": bytes_to_read(plan_shards(files, 1)[0], shard.columns),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "thread_cpus": sorted(set().union(*thread_affinities())),
    }
    (digest_dir / f"rank-{hvd.rank()}.json").write_text(json.dumps(record))


def _global_statistics(shard, n_feat: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Normalisation statistics over every rank (sum, sum of squares and count, allreduced): the same
    mean and variance on each rank, so every rank builds the same network; and the rows of all ranks."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    sums = shard.sums if shard.sums is not None else np.zeros(2 * n_feat)
    total = hvd.allreduce(tf.constant(np.concatenate([sums, [shard.fit_rows]])), op=hvd.Sum).numpy()
    count = total[-1]
    validation_rows = int(hvd.allreduce(tf.constant(shard.validation_rows, tf.int64), op=hvd.Sum))
    mean = total[:n_feat] / count
    variance = np.maximum(total[n_feat : 2 * n_feat] / count - mean**2, 1e-12)
    return mean, variance, int(count), validation_rows  # count: the rows gradients are computed on


def _batch_and_steps(cfg: TrainConfig, local_rows: int) -> tuple[int, int]:
    """The batch per rank and the steps per epoch, the same on every rank: the smallest shard decides."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from include.mlops.trainer.stopping import batch_per_rank

    smallest = int(hvd.allgather(tf.constant(np.array([local_rows], dtype=np.int64))).numpy().min())
    if cfg.batch_size is None:
        batch = batch_per_rank(smallest, DEFAULT_BATCH, cfg.min_steps_per_epoch)
        log.info(
            "batch per rank %d (fitted: %d rows per rank, %d at most, at least %d steps per epoch)",
            batch,
            smallest,
            DEFAULT_BATCH,
            cfg.min_steps_per_epoch,
        )
    else:
        batch = cfg.batch_size
    steps = smallest // batch
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(f"too little training data: smallest shard has {smallest} rows, batch size is {batch}")
    return batch, steps
