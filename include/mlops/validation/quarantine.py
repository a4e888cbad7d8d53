"""The quarantine store: a failed partition's record beside the data, its history, and the release CLI.

``<quarantine_dir>/<dataset>/date=<D>/quarantine.json`` holds why a partition failed; the data itself is
never moved or touched. Releasing (or a passing validation of new bytes) moves the record into
``history/``, so what was wrong stays on record.

    python -m include.mlops.validation list | release DATASET YYYY-MM-DD
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from include.mlops.common.files import write_json_atomic
from include.mlops.validation.results import FailedExpectation


def quarantine_path(quarantine_dir: Path, dataset: str, day: dt.date) -> Path:
    return Path(quarantine_dir) / dataset / f"date={day.isoformat()}" / "quarantine.json"


def end_quarantine(qpath: Path, how: dict[str, Any]) -> Path:
    """Move a quarantine record into the partition's quarantine history; returns its new path."""
    held = json.loads(qpath.read_text())
    stamp = next(iter(how.values())).replace(":", "").replace("+", "")
    kept = qpath.parent / "history" / f"quarantine-{stamp}.json"
    write_json_atomic(kept, {**held, **how})
    qpath.unlink()
    return kept


def list_quarantines(quarantine_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(quarantine_dir).glob("*/date=*/quarantine.json"))]


def main(argv: list[str] | None = None) -> int:
    """``python -m include.mlops.validation list | release DATASET YYYY-MM-DD``."""
    import argparse
    import sys

    from include.mlops.common.dataset import parse_date
    from include.mlops.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m include.mlops.validation", description="Quarantined partitions")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="partitions in quarantine")
    release = sub.add_parser("release", help="end a quarantine: the next run validates the partition again")
    release.add_argument("dataset")
    release.add_argument("date")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "list":
        for q in list_quarantines(settings.quarantine_dir):
            failed = "; ".join(FailedExpectation(**f).describe() for f in q.get("failed_expectations", []))
            print(f"{q['dataset']} {q['partition']} since {q['quarantined_at']}: {failed}")
        return 0
    try:
        qpath = quarantine_path(settings.quarantine_dir, args.dataset, parse_date(args.date))
    except ValueError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 2
    if not qpath.exists():
        print(f"release: {args.dataset} {args.date} is not in quarantine", file=sys.stderr)
        return 2
    kept = end_quarantine(qpath, {"released_at": dt.datetime.now(dt.UTC).isoformat()})
    print(f"released {args.dataset} {args.date}; record kept at {kept}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
