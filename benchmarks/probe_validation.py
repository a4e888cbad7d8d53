"""One validation in its own process: `python -m benchmarks.probe_validation gx|pandas LAKE DATE`.

Prints JSON: seconds (read + checks), rows, success, peak RSS of this process in MiB, and the
engine that validated (GX: "pandas" in memory or "duckdb" out of core).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak RSS. Linux's ``ru_maxrss`` carries over the parent's RSS at fork (the
    bench's own process can hold a generated day), so it reads the memory's high-water mark,
    ``VmHWM``, which starts afresh with the new program."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    engine, lake, day = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    from include.mlops.common.dataset import load_dataset_config, parse_date
    from include.mlops.settings import get_settings

    settings = get_settings()
    cfg = load_dataset_config(settings.dataset_config_path("card_fraud"))
    suite = json.loads((settings.expectations_dir / f"{cfg.expectation_suite}.json").read_text())
    if engine == "gx":
        import great_expectations  # noqa: F401 - import cost is not validation cost

        from include.mlops.validation.suite import validate_partition

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = validate_partition(
                cfg,
                parse_date(day),
                lake=lake,
                expectations_dir=settings.expectations_dir,
                gx_root=Path(tmp) / "gx",
                validation_dir=Path(tmp) / "records",
                quarantine_dir=Path(tmp) / "quarantine",
                reuse=False,
            )
            seconds = time.perf_counter() - t0
        verdicts = {(f.expectation, f.column) for f in result.failed}
        success, rows, ran_on = result.success, None, result.engine
    else:
        import pandas as pd

        from benchmarks.pandas_checks import run_checks

        t0 = time.perf_counter()
        df = pd.concat([pd.read_parquet(p) for p in cfg.partition_files(lake, parse_date(day))], ignore_index=True)
        from include.mlops.validation.suite import partition_parameters

        checks = run_checks(df, suite, partition_parameters(parse_date(day)))
        ran_on = "plain pandas"
        seconds = time.perf_counter() - t0
        verdicts = {(c["type"], c["column"]) for c in checks if not c["success"]}
        success, rows = not verdicts, len(df)
    peak_mib = peak_rss_mib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "success": success,
                "rows": rows,
                "peak_mib": peak_mib,
                "engine": ran_on,
                "failed": sorted(map(list, verdicts)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
