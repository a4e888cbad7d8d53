"""The second dataset of the tests: ISLP's ``Default`` table (10,000 card holders; label
"No"/"Yes"; numeric balance and income; categorical student), read from the ISLP wheel on
PyPI (pinned by version and sha256; only its CSV is used, the package is never installed:
its dependencies include torch) and written as daily parquet partitions of
``datasets/credit_default.yaml``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

WHEEL = "islp-0.6.0-py3-none-any.whl"
WHEEL_SHA256 = "ca772cecca1747a2f84ee799a5503ddddbdf0e98f90c235494790c1d036c694b"


def default_table(cache: Path) -> pd.DataFrame:
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "ISLP==0.6.0",
             "-d", str(cache)],
            check=True,
            timeout=600,
        )  # fmt: skip
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert digest == WHEEL_SHA256, f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}"
    with zipfile.ZipFile(wheel) as z:
        return pd.read_csv(io.BytesIO(z.read("ISLP/data/Default.csv")))


def write_days(table: pd.DataFrame, lake: Path, start: dt.date, days: int, seed: int = 7) -> list[dt.date]:
    """Shuffle the table (seeded) into `days` daily partitions, with a string customer id."""
    rows = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    rows.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(rows))])
    out = []
    for i, part in enumerate(np.array_split(np.arange(len(rows)), days)):
        day = start + dt.timedelta(days=i)
        folder = lake / "credit_default" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        rows.iloc[part].to_parquet(folder / "part-00000.parquet", index=False)
        out.append(day)
    return out
