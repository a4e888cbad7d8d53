"""Checkpoints of a training run: one per finished epoch, written by rank 0, resumed by a retried task.

A checkpoint resumes only into a run on the same inputs (``training_key``: data hash, partitions,
batch, learning rate, ranks, code); ``latest.json`` is written last, so it only names complete files.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from include.mlops.common.files import write_json_atomic
from include.mlops.trainer.env import trainer_env

if TYPE_CHECKING:
    from pathlib import Path

    from include.mlops.trainer.train import TrainConfig

log = logging.getLogger(__name__)


def training_key(cfg: TrainConfig, size: int) -> dict[str, str]:
    """What a checkpoint was trained on; a checkpoint under another key never resumes here."""
    tags = cfg.tags or {}
    return {
        "data.sha256": tags.get("data.sha256", ""),
        "partitions": ",".join(cfg.partitions),
        "batch_size": str(cfg.batch_size),
        "learning_rate": repr(cfg.learning_rate),
        "horovod_size": str(size),
        "code.git_commit": trainer_env().git_commit,
    }


def key_diff(theirs: dict[str, str], key: dict[str, str]) -> str:
    return "; ".join(f"{k} {theirs.get(k) or '?'} -> {v or '?'}" for k, v in key.items() if theirs.get(k) != v)


def why_fresh(ckpt_dir: Path, key: dict[str, str]) -> str:
    """Why training starts at epoch 1: the checkpoints of this run that exist, and how they differ."""
    others = []
    for state_path in sorted(ckpt_dir.parent.glob("*/latest.json")) if ckpt_dir.parent.is_dir() else []:
        if state_path.parent == ckpt_dir:
            continue
        try:
            theirs = json.loads(state_path.read_text()).get("training_key", {})
        except (OSError, ValueError):
            continue
        others.append(f"{state_path.parent.name}: " + (key_diff(theirs, key) or "same inputs (a forced retrain)"))
    if not others:
        return "no checkpoint for this run yet"
    return "not resuming from checkpoints trained on other inputs: " + " | ".join(others)


def save_checkpoint(
    ckpt_dir: Path,
    epoch: int,
    network,
    optimizer,
    steps: int,
    key: dict[str, str],
    early_stopping: dict[str, Any] | None = None,
) -> None:
    """Weights and optimizer state of a finished epoch; latest.json is written last, so it only
    ever names complete files."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    weights_file = f"epoch-{epoch:03d}.weights.h5"
    optimizer_file = f"epoch-{epoch:03d}.optimizer.npz"
    network.save_weights(ckpt_dir / weights_file)
    np.savez(ckpt_dir / optimizer_file, *[np.asarray(v.numpy()) for v in optimizer.variables])
    state = {
        "epoch": epoch,
        "weights": weights_file,
        "optimizer": optimizer_file,
        "optimizer_iterations": int(optimizer.iterations.numpy()),
        "steps_per_epoch": steps,
        "training_key": key,
        "early_stopping": early_stopping,
    }
    write_json_atomic(ckpt_dir / "latest.json", state)


def restore_checkpoint(ckpt_dir: Path, network, optimizer) -> int:
    """Load the newest checkpoint into the network and optimizer; returns the epochs it holds."""
    state = json.loads((ckpt_dir / "latest.json").read_text())
    network.load_weights(ckpt_dir / state["weights"])
    if state.get("optimizer"):
        with np.load(ckpt_dir / state["optimizer"]) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if [tuple(v.shape) for v in values] == [tuple(v.shape) for v in optimizer.variables]:
            for var, value in zip(optimizer.variables, values, strict=True):
                var.assign(value)
        else:
            log.warning("checkpoint optimizer state does not fit this optimizer: its moments start fresh")
    else:
        log.warning("checkpoint has no optimizer state: its moments start fresh")
    log.info("resuming from %s (epoch %d done)", state["weights"], int(state["epoch"]))
    return int(state["epoch"])


def resume_epoch(ckpt_dir: Path, key: dict[str, str], network, optimizer) -> int:
    """Rank 0: the epochs the checkpoint in `ckpt_dir` holds, restored into network and optimizer,
    when it was trained on the same inputs (`key`); else 0, saying why training starts fresh."""
    saved_key = None
    if (ckpt_dir / "latest.json").exists():
        saved_key = json.loads((ckpt_dir / "latest.json").read_text()).get("training_key", key)
    if saved_key == key:
        return restore_checkpoint(ckpt_dir, network, optimizer)
    if saved_key is not None:
        log.info(
            "starting fresh at epoch 1: the checkpoint in %s has other inputs: %s", ckpt_dir, key_diff(saved_key, key)
        )
    else:
        log.info("starting fresh at epoch 1: %s", why_fresh(ckpt_dir, key))
    return 0
