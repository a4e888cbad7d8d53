"""The validation probe's peak memory is its own, not its parent's."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_the_probe_peak_ignores_what_its_parent_held():
    held = bytearray(600 * 1024 * 1024)  # the parent's RSS at fork: ru_maxrss would start from it
    code = "from benchmarks.probe_validation import peak_rss_mib; print(peak_rss_mib())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert float(out.stdout) < 200, out.stdout
    del held
