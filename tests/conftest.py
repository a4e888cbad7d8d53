"""Shared fixtures: an isolated embedded home (lake, MLflow store, GX) per test session."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINER_VENV = Path(os.environ.get("MLOPS_TRAINER_VENV", ROOT / ".venv-trainer"))

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


# The longest modules first: `make test` runs three pytest-xdist workers that take whole files
# (--dist loadfile) in this order, so the three longest end-to-end modules start at once and the
# short files fill in behind them.
LONGEST_FIRST = ("test_backfill.py", "test_pipeline_kubernetes.py", "test_pipeline_airflow.py", "test_make_up.py")


# Every test belongs to one tier, each with its cost: its module's ``pytestmark``, or a mark on the test
# itself, which wins (a unit module's one test that runs a program is marked ``integration``; select the
# unit tier with ``-m "unit and not integration"``, as ``make test-fast`` does).
TIERS = ("unit", "dag", "integration", "e2e")


def tier_of(item) -> str | None:
    return next((m.name for m in item.iter_markers() if m.name in TIERS), None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: needs a tier marker, one of {TIERS}")

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: tests keep their order within a module
    if (TRAINER_VENV / "bin" / "python").exists():
        return
    skip = pytest.mark.skip(reason=f"trainer environment missing at {TRAINER_VENV}: run `make trainer-env`")
    for item in items:
        if "trainer" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


class UnitTierViolation(AssertionError):
    """A test marked ``unit`` started a process or opened a network connection."""


@pytest.fixture(autouse=True)
def _unit_tier_stays_in_process(request, monkeypatch):
    """``unit`` means no subprocess and no server: fail the test that tries, so the marker cannot lie."""
    if tier_of(request.node) != "unit":
        return
    import socket
    import subprocess

    def refuse(what):
        def _refused(*args, **kwargs):
            raise UnitTierViolation(f"{request.node.nodeid} is marked unit but {what}: mark its module integration")

        return _refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("started a subprocess"))
    monkeypatch.setattr(os, "fork", refuse("forked"))
    monkeypatch.setattr(socket.socket, "connect", refuse("opened a network connection"))


def validation_kwargs(settings, **extra) -> dict:
    """Where validate_partition/validate_window read and write, for a test's Settings."""
    return dict(
        lake=settings.lake,
        expectations_dir=settings.expectations_dir,
        gx_root=settings.gx_root,
        validation_dir=settings.validation_dir,
        quarantine_dir=settings.quarantine_dir,
        **extra,
    )


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh MLOPS_HOME with its own lake and MLflow store; returns Settings."""
    from include.mlops.settings import get_settings

    h = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(h))
    monkeypatch.delenv("MLOPS_LAKE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{h}/mlflow/mlflow.db")
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACT_ROOT", str(h / "mlflow" / "artifacts"))
    (h / "mlflow").mkdir(parents=True)
    return get_settings()


@pytest.fixture(scope="session")
def card_fraud():
    from include.mlops.common.dataset import load_dataset_config

    return load_dataset_config(ROOT / "datasets" / "card_fraud.yaml")


DAY0 = dt.date(2026, 1, 1)


# Every registered version carries these (the lineage the README promises).
LINEAGE_TAGS = [
    "airflow.dag_id",
    "airflow.run_id",
    "data.interval_start",
    "data.interval_end",
    "data.partitions",
    "data.sha256",
    "evaluation.partitions",
    "evaluation.sha256",
    "validation.success",
    "validation.result_id",
    "code.git_commit",
    "train.horovod_size",
    "gate.passed",
]


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for this test session (see tests/postgres.py)."""
    from tests.postgres import start_or_skip

    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_store(request, home, monkeypatch):
    """An MLflow store as users run it: the embedded SQLite file, and PostgreSQL (a real server).

    Sets MLFLOW_TRACKING_URI, creates experiment "t"; returns the tracking URI.
    """
    from include.mlops.common.tracking import ensure_experiment

    uri = home.mlflow_tracking_uri
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        uri = server.url(server.create_database("mlflow"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ensure_experiment(uri, "t", home.mlflow_artifact_root)
    return uri
