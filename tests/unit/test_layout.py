"""The layout's rules, read from the code's own imports (every import, lazy ones inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

STAGES = ("common", "validation", "training", "trainer", "evaluation", "registry", "airflow")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, load_time_only: bool = False) -> set[str]:
    """Project modules ``path`` imports (``from include.mlops import pipeline`` counts as the submodule)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only
            nested = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                if top or not load_time_only:
                    found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if top or not load_time_only:
                    found.add(child.module)
                    found.update(f"{child.module}.{a.name}" for a in child.names)
            visit(child, nested)

    visit(tree, True)
    return {m for m in found if m.split(".")[0] in ("include", "devstack", "tests", "benchmarks")}


LIBRARY = sorted((ROOT / "include").rglob("*.py"))
ALL = {module_name(p): p for p in LIBRARY + sorted((ROOT / "devstack").rglob("*.py"))}


def existing(names: set[str]) -> set[str]:
    return {n for n in names if n in ALL}


def test_the_library_imports_no_harness_test_or_benchmark():
    offenders = {
        module_name(p): sorted(m for m in imports(p) if m.split(".")[0] != "include")
        for p in LIBRARY
        if any(m.split(".")[0] != "include" for m in imports(p))
    }
    assert offenders == {}


def test_every_stage_has_its_folder_and_no_stage_module_is_left_at_the_top():
    top = sorted(p.stem for p in (ROOT / "include" / "mlops").glob("*.py") if p.stem != "__init__")
    assert top == ["pipeline", "runs", "settings"], top  # the DAG's steps, the run reference, the settings reader
    for stage in STAGES:
        assert (ROOT / "include" / "mlops" / stage / "__init__.py").is_file(), stage


@pytest.mark.parametrize(
    ("package", "may_import"),
    [
        ("include.mlops.common", ("include.mlops.common",)),
        ("include.mlops.trainer", ("include.mlops.common", "include.mlops.trainer")),
        ("include.mlops.evaluation", ("include.mlops.evaluation",)),
    ],
)
def test_shared_and_pure_packages_import_only_what_they_may(package, may_import):
    """common/ and the trainer ship in the trainer image; the gate stays a pure function."""
    offenders = {}
    for name, path in ALL.items():
        if name == package or name.startswith(package + "."):
            bad = sorted(m for m in existing(imports(path)) if not m.startswith(may_import) and m != "include")
            bad = [m for m in bad if m not in ("include.mlops",)]
            if bad:
                offenders[name] = bad
    assert offenders == {}


def test_no_two_modules_import_each_other_at_load():
    graph = {name: existing(imports(path, load_time_only=True)) - {name} for name, path in ALL.items()}
    cycles = []

    def walk(node: str, stack: list[str], on_stack: set[str], done: set[str]) -> None:
        on_stack.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_stack:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, stack, on_stack, done)
        stack.pop()
        on_stack.discard(node)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            walk(name, [], set(), done)
    # A package's __init__ importing its own modules is not a cycle of two modules.
    cycles = [c for c in cycles if not all(m.startswith(c[0]) or c[0].startswith(m) for m in c)]
    assert cycles == []


def test_the_rules_see_a_violation():
    """The scanner finds lazy imports and the cycle check is fed real edges (these would fail above)."""
    pipeline = imports(ROOT / "include" / "mlops" / "pipeline.py")
    assert "include.mlops.validation.suite" in pipeline  # imported inside a step function
    assert "include.mlops.validation.suite" not in imports(
        ROOT / "include" / "mlops" / "pipeline.py", load_time_only=True
    )
    assert "include.mlops.settings" in existing(imports(ROOT / "devstack" / "cli.py", load_time_only=True))


def test_a_unit_test_cannot_start_a_program_fork_or_open_a_socket():
    """The unit marker cannot lie: tests/conftest.py makes these fail in any unit test."""
    import os
    import socket
    import subprocess

    from tests.conftest import UnitTierViolation

    with pytest.raises(UnitTierViolation, match="started a subprocess"):
        subprocess.run(["true"], check=False)
    with pytest.raises(UnitTierViolation, match="forked"):
        os.fork()
    with pytest.raises(UnitTierViolation, match="opened a network connection"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
