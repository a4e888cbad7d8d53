"""scripts/gpu_check.sh: the GPU check, exercised on CPU (--cpu, Gloo) and in failing GPU modes.

The real GPU path (NCCL, one GPU per rank) needs NVIDIA GPUs; here the script's CPU mode runs
the same horovodrun commands and report, and its GPU mode is checked to refuse, with a
one-line reason, a machine without nvidia-smi and a Horovod built without NCCL.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TRAINER_VENV

pytestmark = [pytest.mark.integration, pytest.mark.trainer]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
REPORT = ROOT / "scripts" / "gpu_check_report.py"
BASH = shutil.which("bash") or "/bin/bash"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW", "VIRTUAL_ENV"))}
    env.pop("OUT", None)
    env.update(extra)
    return env


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line reason, got:\n{stderr}"
    assert lines[0].startswith("gpu_check: FAIL: ")
    return lines[0]


def test_cpu_mode_reports_one_and_two_ranks(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [BASH, str(SCRIPT), "--cpu", "--max-ranks", "2", "--rows", "10000", "--epochs", "2", "--batch-size", "256"],
        cwd=ROOT,
        env=_env(OUT=str(out), MLOPS_TRAINER_VENV=str(TRAINER_VENV), TMPDIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is True and report["reason"] is None
    assert report["mode"] == "cpu"
    assert report["meta"]["tensorflow"] and report["meta"]["horovod"]
    rows = {r["ranks"]: r for r in report["rows"]}
    assert sorted(rows) == [1, 2]
    one, two = rows[1]["examples_per_sec"], rows[2]["examples_per_sec"]
    assert one > 0 and two > 0
    assert rows[1]["scaling_efficiency"] == pytest.approx(1.0)
    assert rows[2]["scaling_efficiency"] == pytest.approx(two / (2 * one))
    assert rows[2]["per_rank_examples_per_sec"] == pytest.approx(two / 2)
    for k, row in rows.items():
        assert row["horovod_size"] == k
        # The trainer's "horovod rank R/SIZE local_rank L device D collective C" lines, when present.
        if row["devices"]:
            assert sorted(d["rank"] for d in row["devices"]) == list(range(k))
            assert all("CPU" in d["device"] for d in row["devices"])
        else:
            assert row["devices_summary"] == "unknown"
    # The markdown table a docs page can quote, printed and written next to the JSON.
    assert "| ranks | examples/s | per-rank examples/s | scaling efficiency | devices |" in proc.stdout
    assert (out / "gpu_check.md").read_text().strip() == report["markdown"].strip()
    assert "elapsed:" in proc.stdout
    assert not list(tmp_path.glob("gpu_check.*")), "the temporary lake was left behind"


def test_gpu_mode_without_nvidia_smi_fails_with_a_reason(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run(
        [BASH, str(SCRIPT), "--max-ranks", "2", "--rows", "1000"],
        cwd=ROOT,
        env=_env(PATH=str(empty), OUT=str(tmp_path / "out")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "nvidia-smi" in _one_line(proc.stderr)
    assert not (tmp_path / "out" / "gpu_check.json").exists()


def test_gpu_mode_with_horovod_without_nccl_fails_with_a_reason(tmp_path):
    # A machine that looks like it has a GPU, with the CPU trainer venv (Gloo, no NCCL). Without
    # Horovod there the script would build .venv-trainer-gpu instead: not in a test.
    if not list(TRAINER_VENV.glob("lib/python3*/site-packages/horovod/tensorflow/mpi_lib*.so")):
        pytest.skip(f"no Horovod in {TRAINER_VENV}")
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  -L) echo "GPU 0: Fake GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;\n'
        '  *) echo "Fake GPU, 0.0" ;;\n'
        "esac\n"
    )
    smi.chmod(0o755)
    proc = subprocess.run(
        [BASH, str(SCRIPT), "--max-ranks", "1", "--rows", "1000"],
        cwd=ROOT,
        env=_env(
            PATH=f"{fake}{os.pathsep}{os.environ['PATH']}",
            MLOPS_GPU_VENV=str(TRAINER_VENV),
            OUT=str(tmp_path / "out"),
            TMPDIR=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "NCCL" in _one_line(proc.stderr)


def _fake_runs(runs, devices: dict[int, list[tuple[str, str]]], eps: dict[int, float]) -> None:
    runs.mkdir()
    for k, ranks in devices.items():
        (runs / f"np{k}.status").write_text("0 12.5\n")
        (runs / f"np{k}.json").write_text(json.dumps({"examples_per_sec": eps[k], "horovod_size": k}))
        (runs / f"np{k}.log").write_text(
            "".join(
                f"[{r}]<stdout>:2026-01-01 00:00:00,000 mlops.trainer INFO "
                f"horovod rank {r}/{k} local_rank {r} device {dev} collective {coll}\n"
                for r, (dev, coll) in enumerate(ranks)
            )
        )


def _report(tmp_path, runs, mode: str, ranks: str) -> subprocess.CompletedProcess:
    args = ["--mode", mode, "--runs-dir", str(runs), "--ranks", ranks, "--out-json", str(tmp_path / "report.json")]
    return subprocess.run(
        [sys.executable, str(REPORT), *args, "--meta", "gpu=Fake GPU, 0.0", "--meta", "nccl_built=22105"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_report_passes_gpu_ranks_on_nccl(tmp_path):
    runs = tmp_path / "runs"
    _fake_runs(
        runs,
        {1: [("/GPU:0", "NCCL")], 2: [("/GPU:0", "NCCL"), ("/GPU:1", "NCCL")]},
        {1: 1000.0, 2: 1800.0},
    )
    proc = _report(tmp_path, runs, "gpu", "1,2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["scaling_efficiency"] for r in report["rows"]] == pytest.approx([1.0, 0.9])
    assert report["rows"][1]["devices_summary"] == "/GPU:0–1 (one per rank), NCCL"
    assert "NCCL built: 2.21.5" in proc.stdout


def test_report_fails_a_gpu_run_on_a_cpu_device(tmp_path):
    runs = tmp_path / "runs"
    _fake_runs(
        runs,
        {1: [("/GPU:0", "NCCL")], 2: [("/GPU:0", "NCCL"), ("/CPU:0", "Gloo")]},
        {1: 1000.0, 2: 1800.0},
    )
    proc = _report(tmp_path, runs, "gpu", "1,2")
    assert proc.returncode == 1
    assert "rank 1 ran on /CPU:0, not a GPU" in _one_line(proc.stderr)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False and "not a GPU" in report["reason"]
    # The same runs pass in CPU mode, where the device is only reported.
    assert _report(tmp_path, runs, "cpu", "1,2").returncode == 0
