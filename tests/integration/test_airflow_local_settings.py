"""The embedded default's Airflow local settings: the scheduler (whose LocalExecutor forks the task
workers) starts with the tasks' libraries loaded; other Airflow processes do not load them."""

import json
import subprocess
import sys

import pytest

from devstack.embedded import embedded_env
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PROBE = """
import json, sys
sys.argv = ["airflow", sys.argv[1]]
import airflow_local_settings  # as airflow.settings does, from PYTHONPATH
print(json.dumps({m: m in sys.modules for m in ("mlflow", "great_expectations", "include.mlops.pipeline")}))
"""


@pytest.mark.parametrize(
    ("component", "preload", "loaded"),
    [("scheduler", "1", True), ("api-server", "1", False), ("scheduler", "0", False)],
)
def test_only_the_scheduler_preloads_the_tasks_libraries(home, component, preload, loaded):
    env = embedded_env(home, base={"PYTHONPATH": str(ROOT), "MLOPS_PRELOAD_TASK_MODULES": preload})
    assert env["PYTHONPATH"].split(":")[:2] == [str(ROOT / "devstack" / "airflow_config"), str(ROOT)]
    out = subprocess.run([sys.executable, "-c", PROBE, component], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == dict.fromkeys(
        ("mlflow", "great_expectations", "include.mlops.pipeline"), loaded
    )
