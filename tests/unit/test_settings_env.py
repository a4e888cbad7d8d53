"""The control plane's settings reader: each variable read in one place, a bad value named in one line."""

import pytest

from include.mlops import settings
from include.mlops.settings import SettingsError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("read", "variable", "good", "value", "bad"),
    [
        (settings.task_retry_delay_seconds, "MLOPS_TASK_RETRY_DELAY", "45", 45, "30s"),
        (settings.missing_data_policy, "MLOPS_MISSING_DATA", "skip", "skip", "ignore"),
    ],
)
def test_a_setting_reads_its_variable_and_names_it_when_malformed(monkeypatch, read, variable, good, value, bad):
    monkeypatch.setenv(variable, good)
    assert read() == value
    monkeypatch.setenv(variable, bad)
    with pytest.raises(SettingsError, match=rf"^{variable} must be .*, got '{bad}'$"):
        read()


def test_defaults_without_the_variables(monkeypatch):
    for variable in ("MLOPS_TASK_RETRY_DELAY", "MLOPS_MISSING_DATA", "MLOPS_MLFLOW_UI_URL", "MLOPS_DATA_DOCS_URL",
                     "MLOPS_REGISTRY_LOCK_URI", "MLOPS_DATA_DOCS_ASSETS"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    assert (settings.task_retry_delay_seconds(), settings.missing_data_policy()) == (30, "fail")
    assert (settings.mlflow_ui_url(), settings.data_docs_site_url()) == ("http://127.0.0.1:5000", "")
    assert settings.registry_lock_uri() == ""
    assert settings.data_docs_assets_dir() == settings.PROJECT_ROOT / ".local" / "data-docs-assets"
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.example/")
    assert settings.mlflow_ui_url() == "https://mlflow.example"  # no double slash in the links


def test_only_the_settings_readers_read_the_environment():
    """Every MLOPS_ variable is read in settings.py (the control plane) or trainer/env.py (the trainer)."""
    import re

    readers = {settings.PROJECT_ROOT / "include" / "mlops" / p for p in ("settings.py", "trainer/env.py")}
    found = []
    for path in sorted((settings.PROJECT_ROOT / "include").rglob("*.py")):
        if path in readers:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            writes = re.search(r"environ\[[^\]]+\]\s*=(?!=)", line)  # make render-k8s sets what it renders with
            if re.search(r"""environ(\.get)?[\[(]\s*["']MLOPS_""", line) and not writes:
                found.append(f"{path.relative_to(settings.PROJECT_ROOT)}:{n}")
    assert found == []
