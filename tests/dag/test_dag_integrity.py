"""DAG integrity: imports cleanly, is well-formed, and parsing does no heavy work.

Parse-time checks run the import in a fresh interpreter, the way the dag-processor does,
with an audit hook watching every file open, socket, subprocess and SQLite connection, and
spies on Variable/Connection lookups.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.dag

DAGS = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ["tensorflow", "horovod", "mlflow", "great_expectations", "pandas", "numpy", "sklearn", "keras", "pyarrow"]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"fraud_model_pipeline", "credit_default_pipeline"} <= set(dagbag.dags)


def test_every_dataset_has_the_dag_its_config_names_and_every_dag_a_dataset(dagbag):
    """A dataset is a config, a suite and a DAG file from the factory; the three agree."""
    from include.mlops.common.dataset import load_dataset_config

    configs = [load_dataset_config(path) for path in sorted((ROOT / "datasets").glob("*.yaml"))]
    assert len(configs) >= 2
    for cfg in configs:
        dag = dagbag.dags.get(cfg.dag_id)
        assert dag is not None, f"datasets/{cfg.name}.yaml names dag_id {cfg.dag_id!r}, which no DAG file builds"
        assert f"dataset:{cfg.name}" in dag.tags, (cfg.dag_id, dag.tags)
        assert (ROOT / "expectations" / f"{cfg.expectation_suite}.json").exists()
    assert len({c.dag_id for c in configs}) == len(configs) == len(dagbag.dags)
    assert len({c.experiment for c in configs}) == len({c.registered_model for c in configs}) == len(configs)
    for path in DAGS:  # each DAG file is the factory call and little else
        code = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith(('"""', "#"))]
        assert len(code) <= 5, f"{path.name}: {len(code)} lines of code; the factory builds a DAG"


def test_every_dag_has_tags_retries_docs_and_owner(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for task in dag.tasks:
            # A failed data contract is not retried; the data sensor decides itself when to give up.
            if task.task_id not in ("validate", "wait_for_data"):
                assert task.retries >= 1, f"{dag_id}.{task.task_id}"
            assert task.owner == "ml-platform"


@pytest.mark.parametrize("dag_id", ["fraud_model_pipeline", "credit_default_pipeline"])
def test_pipeline_shape(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    chain = ["wait_for_data", "plan", "validate", "train", "evaluate", "gate", "register", "promote"]
    outcomes = {"champion_replaced", "candidate_rejected", "candidate_held"}
    assert set(chain) | outcomes | {"summarize"} == set(dag.task_dict)
    # Every input is an argument, so the graph has an edge for each one that exists (and no other).
    upstream_of = {task_id: task.upstream_task_ids for task_id, task in dag.task_dict.items()}
    assert upstream_of == {
        "wait_for_data": set(),
        "plan": {"wait_for_data"},
        "validate": {"plan"},
        "train": {"plan", "validate"},
        "evaluate": {"plan", "train"},
        "gate": {"evaluate", "train"},
        "register": {"plan", "validate", "train", "gate"},
        "promote": {"register", "gate"},
        **{outcome: {"promote"} for outcome in outcomes},
        # Not promote: a branch skips the direct downstream tasks it does not choose.
        "summarize": {"plan", "validate", "train", "gate", "register", *outcomes},
    }
    assert "promote" not in upstream_of["summarize"]
    assert dag.task_dict["summarize"].trigger_rule == "none_failed_min_one_success"
    assert dag.task_dict["validate"].retries == 0
    sensor = dag.task_dict["wait_for_data"]
    assert sensor.mode == "reschedule" and sensor.retries == 0  # frees its worker slot while it waits
    assert dag.max_active_runs > 1  # a manual run is not held behind one waiting for data
    assert dag.catchup is False


def test_every_param_has_a_readable_label_and_a_description(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.schema["title"] != name, f"{dag_id}.{name}: no readable title"
            assert len(param.description or "") > 20, f"{dag_id}.{name} has no description"


def test_params_defaults_validate_and_bounds(dagbag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["fraud_model_pipeline"]
    params = dag.params
    params.validate()  # a scheduled run needs valid defaults for every param
    for bad in ({"horovod_np": 0}, {"window_days": 31}, {"partition_date": "2026/01/01"}, {"min_pr_auc": 2}):
        merged = ParamsDict({k: v for k, v in params.items()})
        (name,) = bad
        with pytest.raises(ParamValidationError, match=name):
            for k, v in bad.items():
                merged[k] = v
            merged.validate()


PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    import airflow.sdk  # warm: Airflow's own authoring imports are not the DAG's cost
    for name in airflow.sdk.__all__:
        try:
            getattr(airflow.sdk, name)
        except (AttributeError, ImportError):
            pass
    from airflow.sdk import Connection, Variable
    events = []
    def spy(name, orig):
        def wrapper(*a, **k):
            events.append(["lookup", name, repr(a)])
            return orig(*a, **k)
        return wrapper
    Variable.get = spy("Variable.get", Variable.get)
    Connection.get = spy("Connection.get", Connection.get)
    path = sys.argv[1]
    def hook(event, args):
        if event == "open":
            name = str(args[0])
            if not name.endswith((".py", ".pyc", ".so", ".pth")) and "__pycache__" not in name and not name.startswith("/proc") and name != path:
                events.append(["open", name])
        elif event in ("socket.connect", "subprocess.Popen", "sqlite3.connect", "os.system"):
            events.append([event, repr(args)[:200]])
    before = set(sys.modules)
    sys.addaudithook(hook)
    spec = importlib.util.spec_from_file_location("dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    added = set(sys.modules) - before
    new = sorted(m.split(".")[0] for m in added)
    ours = sorted(m for m in added if m == "include" or m.startswith("include."))
    print(json.dumps({"events": events, "new_modules": sorted(set(new)), "include_modules": ours}))
    """
)


# What a DAG file may import from include/ at parse time: the wiring (which reads only the
# environment) and, with the Kubernetes launcher, the operator class. Pipeline code (pipeline,
# validation, registry, trainer...) is imported inside tasks.
WIRING = {
    "local": {
        "include",
        "include.mlops",
        "include.mlops.airflow",
        "include.mlops.airflow.dag_factory",
        "include.mlops.airflow.links",
        "include.mlops.airflow.trainer_steps",
        "include.mlops.settings",
    },
    "kubernetes": {
        "include",
        "include.mlops",
        "include.mlops.airflow",
        "include.mlops.airflow.dag_factory",
        "include.mlops.airflow.links",
        "include.mlops.airflow.trainer_steps",
        "include.mlops.settings",
        "include.mlops.training",
        "include.mlops.training.k8s",
        "include.mlops.training.k8s.operators",
        "include.mlops.training.k8s.specs",
    },
}


@pytest.mark.parametrize("launcher", ["local", "kubernetes"])
@pytest.mark.parametrize("dag_file", DAGS, ids=[p.name for p in DAGS])
def test_parse_time_does_no_io_and_imports_nothing_heavy(dag_file, launcher, tmp_path):
    import os

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "MLOPS_LAUNCHER": launcher}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["events"] == []
    heavy = sorted(set(report["new_modules"]) & set(HEAVY))
    assert heavy == [], f"{dag_file.name} imports {heavy} at parse time"
    extra = sorted(set(report["include_modules"]) - WIRING[launcher])
    assert extra == [], f"{dag_file.name} imports pipeline code at parse time: {extra}"


def test_probe_catches_a_heavy_dag(tmp_path):
    """The parse-time probe must fail on a DAG that does what we forbid."""
    import os

    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import json\nopen(__file__ + '.txt', 'w').write('x')\nimport sqlite3\nsqlite3.connect(':memory:')\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(bad)], capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    kinds = {e[0] for e in report["events"]}
    assert {"open", "sqlite3.connect"} <= kinds


SHAPE = textwrap.dedent(
    """
    import json
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=__import__("sys").argv[1])
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["fraud_model_pipeline"]
    print(json.dumps({
        t.task_id: {"upstream": sorted(t.upstream_task_ids), "classes": [c.__name__ for c in type(t).__mro__],
                    "retries": t.retries, "deferrable": getattr(t, "deferrable", None)}
        for t in dag.tasks
    }))
    """
)


def _shape(tmp_path, **env):
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    out = subprocess.run(
        [sys.executable, "-c", SHAPE, str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env={**base, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kubernetes_launcher_changes_the_operators_not_the_dag(tmp_path):
    local = _shape(tmp_path, MLOPS_LAUNCHER="local")
    k8s = _shape(tmp_path, MLOPS_LAUNCHER="kubernetes")
    deferrable = _shape(tmp_path, MLOPS_LAUNCHER="kubernetes", MLOPS_K8S_DEFERRABLE="true")
    assert {t: v["upstream"] for t, v in local.items()} == {t: v["upstream"] for t, v in k8s.items()}
    for job in ("train", "evaluate"):
        assert "KubernetesPodOperator" not in local[job]["classes"]
        assert k8s[job]["classes"][:2] == ["TrainerJobOperator", "KubernetesPodOperator"]
        assert k8s[job]["retries"] == local[job]["retries"] == 1
        assert k8s[job]["deferrable"] is False and deferrable[job]["deferrable"] is True
    assert all("KubernetesPodOperator" not in v["classes"] for t, v in k8s.items() if t not in ("train", "evaluate"))
