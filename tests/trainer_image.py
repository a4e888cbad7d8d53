"""The files the trainer image ships, laid out as the image lays them out, for tests that run the trainer.

The COPY lines of ``images/trainer/Dockerfile``'s final stage say what the image holds of the project.
A trainer run from this tree (``project_root=``) can import only those files: if the trainer imported a
control-plane module (``include.mlops.settings``, the validation or registry stages, Airflow glue), the run
would fail with ``ModuleNotFoundError`` here exactly as it would in a pod.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from tests.conftest import ROOT

if TYPE_CHECKING:
    from pathlib import Path

DOCKERFILE = ROOT / "images" / "trainer" / "Dockerfile"


def shipped_sources(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The project paths the final stage COPYs (``--from`` copies come from build stages, not the project)."""
    final: list[str] = []
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            final = []
        elif line.upper().startswith("COPY ") and "--from=" not in line:
            final.append(line.split()[1])
    return final


def build_tree(dest: Path, dockerfile: Path = DOCKERFILE) -> Path:
    """Copy what the image ships into ``dest`` (caches and bytecode left out); returns ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source in shipped_sources(dockerfile):
        src, target = ROOT / source, dest / source
        if src.is_dir():
            shutil.copytree(src, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest
