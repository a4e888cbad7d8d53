"""The trainer program under a real `horovodrun -np 2` (Gloo) with a real MLflow store."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow
import pandas as pd
import pytest

from devstack.datagen import write_day
from include.mlops.training.launcher import JobSpec, TrainerJobError, run_local
from tests.conftest import DAY0, ROOT, TRAINER_VENV
from tests.trainer_image import build_tree

pytestmark = [pytest.mark.integration, pytest.mark.trainer]
DAYS = [DAY0, DAY0 + dt.timedelta(days=1)]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """The trainer image's files only: every job below runs from here, so one that imports a
    control-plane module fails as it would in a pod."""
    return build_tree(tmp_path_factory.mktemp("trainer_image"))


def trainer_env(home, lake) -> dict[str, str]:
    """What the local launcher gives a trainer job, in ``home``; ranks write digests there."""
    return {
        "MLOPS_LAKE": str(lake),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "MLOPS_MLFLOW_ARTIFACT_ROOT": str(home / "artifacts"),
        "MLOPS_TRAINER_DIGEST_DIR": str(home / "digests"),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, image_tree):
    home = tmp_path_factory.mktemp("trainer_home")
    lake = home / "lake"
    for d in DAYS:
        part = write_day(lake, d, 30000)
        # This producer writes 32-bit integers; the served model must still take int64 later.
        path = part / "part-00000.parquet"
        df = pd.read_parquet(path)
        df.astype({c: "int32" for c in df.columns if pd.api.types.is_integer_dtype(df[c])}).to_parquet(
            path, index=False
        )
    env = trainer_env(home, lake)
    args = (
        "--dataset-config", "datasets/card_fraud.yaml",
        "--partitions", ",".join(d.isoformat() for d in DAYS),
        "--epochs", "2",
        "--batch-size", "256",
        "--checkpoint-dir", str(home / "ckpt"),
        "--result-path", str(home / "train.json"),
        "--tag", "airflow.run_id=test-run",
        "--bind-cores",
        "--threads", "1",
    )  # fmt: skip
    result = run_local(
        JobSpec(job="train", num_proc=2, args=args),
        trainer_venv=TRAINER_VENV,
        project_root=image_tree,
        result_path=home / "train.json",
        extra_env=env,
    )
    return home, env, args, result


def test_two_ranks_stay_in_sync(trained):
    home, _, _, result = trained
    assert result["horovod_size"] == 2
    digests = [json.loads((home / "digests" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert {d["size"] for d in digests} == {2}
    # Data sharded by rank (different rows), weights identical (broadcast + averaged gradients).
    assert digests[0]["rows"] + digests[1]["rows"] == result["train_rows"]
    assert digests[0]["weights_sha256"] == digests[1]["weights_sha256"]
    # --bind-cores: every thread of a rank (TF pools, Horovod's background thread) on its cores.
    allowed = sorted(os.sched_getaffinity(0))
    assert digests[0]["thread_cpus"] == [allowed[0]]
    assert digests[1]["thread_cpus"] == [allowed[1 % len(allowed)]]


def test_rank0_logged_params_metrics_model_and_checkpoints(trained):
    home, env, _, result = trained
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = mlflow.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["horovod_size"] == "2"
    assert run.data.tags["airflow.run_id"] == "test-run"
    # No --run-name: the run is named after the dataset, unique per run.
    assert run.data.tags["mlflow.runName"] == f"card_fraud-train-{result['run_id'][:6]}"
    assert run.data.metrics["throughput_examples_per_sec"] > 0
    # Early stopping watches a tenth of the training rows; with --epochs 2 the cap ends training.
    assert (
        0.07
        < int(run.data.params["validation_rows"]) / (result["train_rows"] + int(run.data.params["validation_rows"]))
        < 0.13
    )
    assert run.data.tags["train.stopped"].startswith("reached the cap of 2 epochs (best validation loss ")
    assert result["stopped"] == run.data.tags["train.stopped"]
    val = mlflow.MlflowClient().get_metric_history(result["run_id"], "val_loss")
    assert [m.step for m in val] == [1, 2] and all(0 < m.value < 1 for m in val)
    history = mlflow.MlflowClient().get_metric_history(result["run_id"], "train_loss")
    assert [m.step for m in history] == [1, 2]  # one point per epoch, from rank 0 only
    assert result["model_uri"].startswith("models:/")
    assert sorted(p.name for p in (home / "ckpt").iterdir()) == [
        "epoch-001.optimizer.npz",
        "epoch-001.weights.h5",
        "epoch-002.optimizer.npz",
        "epoch-002.weights.h5",
        "latest.json",
    ]
    # Holdout rows are never trained on.
    assert result["train_rows"] < 60000 * 0.85


def test_resume_from_checkpoint(trained, image_tree):
    home, env, args, _ = trained
    args = [a if a != "2" else "3" for a in args]  # --epochs 3 with the same checkpoint dir
    args[args.index("--result-path") + 1] = str(home / "resume.json")
    result = run_local(
        JobSpec(job="train", num_proc=2, args=(*tuple(args), "--no-log-model")),
        trainer_venv=TRAINER_VENV,
        project_root=image_tree,
        result_path=home / "resume.json",
        extra_env=env,
    )
    assert result["epochs"] == 1  # epochs 1-2 came from the checkpoint
    state = json.loads((home / "ckpt" / "latest.json").read_text())
    assert state["epoch"] == 3
    # Adam's step count (and so its moments) carried over: 3 epochs of steps, not 1.
    assert state["optimizer_iterations"] == 3 * state["steps_per_epoch"]
    digests = [json.loads((home / "digests" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert digests[0]["weights_sha256"] == digests[1]["weights_sha256"]  # both ranks resumed alike


def test_evaluate_scores_candidate_and_loads_from_mlflow(trained, image_tree):
    home, env, _, result = trained
    out = home / "eval.json"
    evaluation = run_local(
        JobSpec(
            job="evaluate",
            args=(
                "--dataset-config",
                "datasets/card_fraud.yaml",
                "--partitions",
                ",".join(d.isoformat() for d in DAYS),
                "--candidate-uri",
                result["model_uri"],
                "--candidate-run-id",
                result["run_id"],
                "--result-path",
                str(out),
            ),
        ),
        trainer_venv=TRAINER_VENV,
        project_root=image_tree,
        result_path=out,
        extra_env=env,
    )
    m = evaluation["candidate"]["metrics"]
    assert evaluation["champion"] is None
    assert 0.0 <= m["pr_auc"] <= 1.0 and m["roc_auc"] > 0.8  # real signal after 2 short epochs
    assert m["positives"] == evaluation["holdout_positives"] > 0
    assert any(k.startswith("channel=") for k in evaluation["candidate"]["slices"])
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    assert mlflow.get_run(result["run_id"]).data.metrics["holdout_pr_auc"] == pytest.approx(m["pr_auc"])


def test_bad_arguments_fail_clearly(trained, image_tree):
    home, env, _, _ = trained
    with pytest.raises(TrainerJobError, match="partition 2031-01-01 has no files"):
        run_local(
            JobSpec(
                job="train",
                num_proc=2,
                args=("--dataset-config", "datasets/card_fraud.yaml", "--partitions", "2031-01-01"),
            ),
            trainer_venv=TRAINER_VENV,
            project_root=image_tree,
            result_path=home / "never.json",
            extra_env=env,
        )
    cli = subprocess.run(
        [
            str(TRAINER_VENV / "bin" / "python"),
            "-m",
            "include.mlops.trainer",
            "train",
            "--dataset-config",
            "x",
            "--partitions",
            "p",
            "--epochs",
            "0",
        ],
        cwd=image_tree,
        env={**os.environ, "PYTHONPATH": str(image_tree)},
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2 and "must be > 0" in cli.stderr


def test_logged_model_scores_int32_and_int64_producers(trained, image_tree):
    """The signature declares long/double, so a producer's narrower ints still score."""
    home, env, _, result = trained
    probe = (
        "import mlflow, pandas as pd, numpy as np, sys\n"
        f"m = mlflow.pyfunc.load_model('{result['model_uri']}')\n"
        f"df = pd.read_parquet('{home / 'lake' / 'transactions' / 'date=2026-01-01'}').head(200)\n"
        "ints = [c for c in df.columns if pd.api.types.is_integer_dtype(df[c])]\n"
        "a = m.predict(df.astype({c: 'int64' for c in ints}))\n"
        "b = m.predict(df.astype({c: 'int32' for c in ints}))\n"
        "assert np.allclose(a, b) and len(a) == 200\n"
        "net = m.unwrap_python_model().network\n"
        "assert (net.name, net.layers[-1].name) == ('card_fraud_mlp', 'probability'), net.name\n"
        "print(sorted(m.metadata.get_input_schema().input_types_dict().items())[:3])\n"
    )
    out = subprocess.run(
        [str(TRAINER_VENV / "bin" / "python"), "-c", probe],
        env={**os.environ, **env, "PYTHONPATH": str(image_tree)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_evaluate_names_labels_that_are_neither_positive_nor_negative(tmp_path, image_tree):
    """The label rule of the dataset config: a value other than 1 or 0 fails scoring, named with its count."""
    lake = tmp_path / "lake"
    path = write_day(lake, DAY0, 3000) / "part-00000.parquet"
    df = pd.read_parquet(path)
    df["is_fraud"] = df["is_fraud"].astype("int64").where(df.index % 100 != 7, 2)  # 30 rows say 2
    df.to_parquet(path, index=False)
    args = ("--dataset-config", "datasets/card_fraud.yaml", "--partitions", DAY0.isoformat(),
            "--candidate-uri", "models:/never-loaded/1")  # fmt: skip
    expected = (
        r"LabelError: dataset 'card_fraud': label column 'is_fraud' has values that are neither positive 1 nor "
        r"negative 0: 2 \(\d+ rows?\)"
    )
    with pytest.raises(TrainerJobError, match=expected):
        run_local(
            JobSpec(job="evaluate", args=args),
            trainer_venv=TRAINER_VENV,
            project_root=image_tree,
            result_path=tmp_path / "eval.json",
            extra_env={"MLOPS_LAKE": str(lake), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"},
        )


RANK_SLEEPER = """
import os, sys, time
marker = os.environ["RANK_MARKER"]
open(os.path.join(marker, f"rank-{os.getpid()}"), "w").close()
time.sleep(300)
"""


def _alive(pids):
    return [p for p in pids if os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read()]


def test_sigkill_of_the_task_leaves_no_rank_running(tmp_path):
    """The task process dies outright (OOM killer, lost worker): its Horovod ranks die with it."""
    project = tmp_path / "project"
    trainer = project / "include" / "mlops" / "trainer"
    trainer.mkdir(parents=True)
    for pkg in (project / "include", project / "include" / "mlops", trainer):
        (pkg / "__init__.py").write_text("")
    (trainer / "__main__.py").write_text(RANK_SLEEPER)  # ranks that would run for 5 minutes
    marker = tmp_path / "ranks"
    marker.mkdir()
    task = textwrap.dedent(
        f"""
        from pathlib import Path
        from include.mlops.training.launcher import JobSpec, run_local
        run_local(JobSpec(job="train", args=(), num_proc=2), trainer_venv=Path({str(TRAINER_VENV)!r}),
                  project_root=Path({str(project)!r}), result_path=Path({str(tmp_path / "r.json")!r}),
                  extra_env={{"RANK_MARKER": {str(marker)!r}}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", task], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while len(list(marker.iterdir())) < 2:
        assert time.time() < deadline and proc.poll() is None, "ranks did not start"
        time.sleep(0.2)
    ranks = [int(p.name.split("-")[1]) for p in marker.iterdir()]
    assert len(_alive(ranks)) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while _alive(ranks) and time.time() < deadline:
        time.sleep(0.5)
    left = _alive(ranks)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"ranks {left} outlived their SIGKILLed task"


def test_a_forced_retrain_starts_fresh_and_says_why(trained, tmp_path, caplog, image_tree):
    """force_retrain gives the run a new checkpoint folder beside the old one (same inputs):
    training starts at epoch 1, every epoch runs, and the log says why it did not resume."""
    import logging
    import shutil

    home, env, args, _ = trained
    shutil.copytree(home / "ckpt", tmp_path / "ckpt" / "fingerprint-a")  # the earlier training of this run
    args = list(args)
    args[args.index("--checkpoint-dir") + 1] = str(tmp_path / "ckpt" / "fingerprint-b")
    args[args.index("--result-path") + 1] = str(tmp_path / "forced.json")
    with caplog.at_level(logging.INFO, logger="include.mlops.training.launcher"):
        result = run_local(
            JobSpec(job="train", num_proc=2, args=(*args, "--no-log-model")),
            trainer_venv=TRAINER_VENV,
            project_root=image_tree,
            result_path=tmp_path / "forced.json",
            extra_env=env,
        )
    assert result["epochs"] == 2  # every epoch trained, none resumed
    assert "starting fresh at epoch 1: not resuming from checkpoints trained on other inputs: " in caplog.text
    assert "fingerprint-a: same inputs (a forced retrain)" in caplog.text


def test_three_ranks_streaming_uneven_files_take_equal_steps_and_stay_in_sync(tmp_path, image_tree):
    """Three ranks over a window of uneven files and row groups, each shard over its memory budget
    (streamed from parquet every epoch): the same step count and the same weights on every rank."""
    lake = tmp_path / "lake"
    write_day(lake, DAYS[0], 4000, files=3, row_group_rows=600)
    write_day(lake, DAYS[1], 2500)
    env = trainer_env(tmp_path, lake)
    args = (
        "--dataset-config", "datasets/card_fraud.yaml",
        "--partitions", ",".join(d.isoformat() for d in DAYS),
        "--epochs", "2",
        "--batch-size", "64",
        "--memory-rows", "500",
        "--no-log-model",
        "--result-path", str(tmp_path / "train.json"),
    )  # fmt: skip
    result = run_local(
        JobSpec(job="train", num_proc=3, args=args),
        trainer_venv=TRAINER_VENV,
        project_root=image_tree,
        result_path=tmp_path / "train.json",
        extra_env=env,
    )
    digests = [json.loads((tmp_path / "digests" / f"rank-{r}.json").read_text()) for r in range(3)]
    rows = [d["rows"] for d in digests]
    assert sum(rows) == result["train_rows"] and len(set(rows)) > 1  # shards differ after the holdout
    assert {d["steps"] for d in digests} == {min(rows) // 64}
    assert len({d["weights_sha256"] for d in digests}) == 1


def test_the_image_tree_holds_no_control_plane_module(image_tree):
    """What makes the runs above prove the boundary: the control plane is absent from the tree they run
    from, so a trainer import of it fails there, and the trainer's own modules are present."""
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        print('present', name)\n"
        "    except ModuleNotFoundError:\n"
        "        print('absent', name)\n"
    )
    names = [
        "include.mlops.settings",
        "include.mlops.pipeline",
        "include.mlops.validation.suite",
        "include.mlops.registry.champion",
        "include.mlops.training.launcher",
        "include.mlops.airflow.trainer_steps",
        "devstack.datagen",
        "airflow",
        "include.mlops.common.dataset",
        "include.mlops.trainer.train",
        "include.mlops.trainer.evaluate",
    ]
    out = subprocess.run(
        [str(TRAINER_VENV / "bin" / "python"), "-c", probe, *names],
        cwd=image_tree,
        env={**os.environ, "PYTHONPATH": str(image_tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = dict(line.split()[::-1] for line in out.stdout.splitlines())
    assert {n: seen[n] for n in names[:8]} == dict.fromkeys(names[:8], "absent")
    assert {n: seen[n] for n in names[8:]} == dict.fromkeys(names[8:], "present")
