"""Trainer CLI; the same command runs in a Kubernetes pod and in the local launcher.

    horovodrun -np 2 -H localhost:2 --gloo python -m include.mlops.trainer train \\
        --dataset-config datasets/card_fraud.yaml --partitions 2026-01-01,2026-01-02 \\
        --result-path out/train.json

    python -m include.mlops.trainer evaluate --dataset-config ... --partitions ... \\
        --candidate-uri models:/m-... --candidate-run-id ... --result-path out/eval.json

The lake and MLflow locations come from the environment (MLOPS_LAKE, MLFLOW_TRACKING_URI,
MLOPS_MLFLOW_ARTIFACT_ROOT; include/mlops/trainer/env.py), as in the pod.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from include.mlops.trainer.env import trainer_env


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m include.mlops.trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset-config", type=Path, required=True)
    common.add_argument("--partitions", required=True, help="comma-separated YYYY-MM-DD")
    common.add_argument("--lake", type=Path, default=None, help="default: $MLOPS_LAKE")
    common.add_argument("--result-path", type=Path, default=None)

    train = sub.add_parser("train", parents=[common], help="Horovod data-parallel training")
    train.add_argument("--epochs", type=_positive(int), default=30, help="at most this many epochs")
    train.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation loss (0: never)",
    )
    train.add_argument(
        "--validation-fraction", type=float, default=0.1, help="of the training rows, to decide when to stop"
    )
    train.add_argument("--min-steps-per-epoch", type=int, default=50, help="small tables get smaller batches")
    train.add_argument(
        "--batch-size",
        type=_positive(int),
        default=None,
        help="rows per step on each rank (default: 512, smaller on a small table: see --min-steps-per-epoch)",
    )
    train.add_argument("--learning-rate", type=_positive(float), default=2e-3)
    train.add_argument("--pos-weight", type=_positive(float), default=2.0)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--threads", type=int, default=0, help="TF threads per rank (0: cores / local ranks)")
    train.add_argument("--checkpoint-dir", type=Path, default=None)
    train.add_argument("--run-name", default=None)
    train.add_argument("--tag", action="append", default=[], help="MLflow run tag KEY=VALUE")
    train.add_argument("--max-steps-per-epoch", type=int, default=0)
    train.add_argument("--no-log-model", action="store_true")
    train.add_argument("--bind-cores", action="store_true", help="pin each rank to its own --threads cores")
    train.add_argument(
        "--memory-rows",
        type=_positive(int),
        default=1_000_000,
        help="rows a rank keeps in memory; a bigger shard is read from parquet every epoch",
    )

    ev = sub.add_parser("evaluate", parents=[common], help="score candidate and champion on the holdout")
    ev.add_argument("--candidate-uri", required=True)
    ev.add_argument("--candidate-run-id", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout)
    for noisy in ("mlflow", "alembic", "urllib3", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    lake = args.lake or trainer_env().lake
    partitions = [p.strip() for p in args.partitions.split(",") if p.strip()]
    if args.command == "train":
        from include.mlops.trainer.train import TrainConfig, run_training

        run_training(
            TrainConfig(
                dataset_config=args.dataset_config,
                partitions=partitions,
                lake=lake,
                epochs=args.epochs,
                patience=args.patience,
                validation_fraction=args.validation_fraction,
                min_steps_per_epoch=args.min_steps_per_epoch,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                pos_weight=args.pos_weight,
                seed=args.seed,
                threads=args.threads,
                checkpoint_dir=args.checkpoint_dir,
                result_path=args.result_path,
                run_name=args.run_name,
                tags=_tags(args.tag),
                max_steps_per_epoch=args.max_steps_per_epoch,
                log_model=not args.no_log_model,
                bind_cores=args.bind_cores,
                memory_rows=args.memory_rows,
            )
        )
    else:
        from include.mlops.trainer.evaluate import run_evaluation

        run_evaluation(
            args.dataset_config, partitions, lake, args.candidate_uri, args.candidate_run_id, args.result_path
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
