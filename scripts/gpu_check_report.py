"""Report for scripts/gpu_check.sh: one markdown table and one JSON file from the runs.

Standard library only (it runs with whichever python the check found). For each number of
ranks k the check leaves, in --runs-dir:

    np{k}.json   the trainer's result file (``examples_per_sec``, ``horovod_size``)
    np{k}.log    horovodrun's output (every rank's lines)
    np{k}.status "<exit code> <wall seconds>"

Each rank's trainer logs once at start:

    horovod rank R/SIZE local_rank L device DEVICE collective COLLECTIVE

This prints the table, writes the JSON (and the table as .md next to it), and exits 1 with a
one-line reason on stderr when the check fails: a run failed or reported no throughput, or,
in GPU mode, a rank ran on a CPU device, used a collective other than NCCL, or logged no
device line at all.

    python scripts/gpu_check_report.py --mode gpu --runs-dir DIR --ranks 1,2,4,8 \\
        --out-json OUT/gpu_check.json --meta gpu="NVIDIA H200, 550.54.15" --meta tensorflow=2.18.1 ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

RANK_LINE = re.compile(
    r"horovod rank (?P<rank>\d+)/(?P<size>\d+) local_rank (?P<local_rank>\d+) "
    r"device (?P<device>\S+) collective (?P<collective>\S+)"
)
# Meta values that are numbers in the JSON.
NUMERIC_META = {
    "gpu_count",
    "nccl_built",
    "rows_per_day",
    "days",
    "epochs",
    "batch_size_per_rank",
    "steps_per_epoch",
    "train_rows",
    "elapsed_seconds",
    "setup_seconds",
}


def parse_rank_lines(text: str) -> list[dict[str, Any]]:
    """Every rank's device line, first one per rank, sorted by rank."""
    seen: dict[int, dict[str, Any]] = {}
    for m in RANK_LINE.finditer(text):
        rank = int(m["rank"])
        seen.setdefault(
            rank,
            {
                "rank": rank,
                "size": int(m["size"]),
                "local_rank": int(m["local_rank"]),
                "device": m["device"],
                "collective": m["collective"],
            },
        )
    return [seen[r] for r in sorted(seen)]


def is_gpu_device(device: str) -> bool:
    return "GPU" in device.upper()


def devices_summary(devices: list[dict[str, Any]], ranks: int) -> str:
    """Short text for the table: '/CPU:0 ×2, Gloo' or '/GPU:0–7 (one per rank), NCCL'."""
    if not devices:
        return "unknown"
    collectives = "/".join(sorted({d["collective"] for d in devices}))
    names = [d["device"] for d in devices]
    split = [re.fullmatch(r"(.*?)(\d+)", n) for n in names]
    if len(set(names)) == 1:
        text = f"{names[0]} ×{len(names)}"
    elif all(split) and len({m[1] for m in split}) == 1 and len({m[2] for m in split}) == len(names):
        index = sorted(int(m[2]) for m in split)
        span = f"{index[0]}–{index[-1]}" if index == list(range(index[0], index[-1] + 1)) else ",".join(map(str, index))
        text = f"{split[0][1]}{span} (one per rank)"
    else:
        text = " ".join(f"r{d['rank']}:{d['device']}" for d in devices)
    if len(devices) < ranks:
        text += f" ({ranks - len(devices)} ranks unknown)"
    return f"{text}, {collectives}"


def nccl_version(code: int) -> str:
    """NCCL_VERSION_CODE as a version: 2.9+ is major*10000 + minor*100 + patch."""
    if code <= 0:
        return "no"
    if code >= 10000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def _meta(items: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--meta expects KEY=VALUE, got {item!r}")
        if key in NUMERIC_META:
            try:
                meta[key] = float(value) if "." in value else int(value)
            except ValueError:
                meta[key] = None
        else:
            meta[key] = value
    return meta


def collect(runs_dir: Path, ranks: list[int]) -> list[dict[str, Any]]:
    """One row per number of ranks that was attempted (a run that never started is left out)."""
    rows = []
    for k in ranks:
        status_path = runs_dir / f"np{k}.status"
        if not status_path.exists():
            continue
        parts = status_path.read_text().split()
        exit_code = int(parts[0]) if parts else -1
        wall = float(parts[1]) if len(parts) > 1 else None
        log_path = runs_dir / f"np{k}.log"
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        result_path = runs_dir / f"np{k}.json"
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        devices = parse_rank_lines(log_text)
        rows.append(
            {
                "ranks": k,
                "exit_code": exit_code,
                "wall_seconds": wall,
                "examples_per_sec": result.get("examples_per_sec"),
                "horovod_size": result.get("horovod_size"),
                "devices": devices,
                "devices_summary": devices_summary(devices, k),
                "log": str(log_path),
            }
        )
    base = next((r["examples_per_sec"] for r in rows if r["ranks"] == 1 and r["examples_per_sec"]), None)
    for r in rows:
        eps = r["examples_per_sec"]
        r["per_rank_examples_per_sec"] = eps / r["ranks"] if eps else None
        r["scaling_efficiency"] = eps / (r["ranks"] * base) if eps and base else None
    return rows


def verdict(mode: str, rows: list[dict[str, Any]], ranks: list[int], timeout: float | None) -> str | None:
    """The one-line reason the check failed, or None."""
    for k in ranks:
        row = next((r for r in rows if r["ranks"] == k), None)
        if row is None:
            return f"ranks={k}: not run (an earlier run failed)"
        if row["exit_code"] in (124, 137) and timeout:
            return f"ranks={k}: timed out after {timeout:g} s; log: {row['log']}"
        if row["exit_code"] != 0:
            return f"ranks={k}: horovodrun exited with {row['exit_code']}; log: {row['log']}"
        if not row["examples_per_sec"] or row["examples_per_sec"] <= 0:
            return f"ranks={k}: no examples_per_sec in the trainer's result; log: {row['log']}"
        if row["horovod_size"] != k:
            return f"ranks={k}: the trainer ran with horovod size {row['horovod_size']}, not {k}"
        if mode != "gpu":
            continue
        devices = row["devices"]
        if len(devices) < k:
            return (
                f"ranks={k}: only {len(devices)} of {k} ranks logged 'horovod rank R/SIZE ... device D collective C': "
                f"GPU placement cannot be confirmed; log: {row['log']}"
            )
        for d in devices:
            if not is_gpu_device(d["device"]):
                return f"ranks={k}: rank {d['rank']} ran on {d['device']}, not a GPU; log: {row['log']}"
            if d["collective"].upper() != "NCCL":
                return f"ranks={k}: rank {d['rank']} used collective {d['collective']}, not NCCL; log: {row['log']}"
    return None


def fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["meta"]
    if report["mode"] == "gpu":
        name, _, driver = str(m.get("gpu") or "unknown GPU").rpartition(", ")
        hw = f"{m.get('gpu_count', '?')} × {name or driver}" + (f", driver {driver}" if name else "")
    else:
        hw = f"CPU only (--cpu: Gloo), {m.get('cpu', '')}".rstrip(", ")
    nccl = nccl_version(int(m.get("nccl_built") or 0))
    lines = [
        f"Horovod check, {report['date']}, mode {report['mode']}: {hw}.",
        f"TensorFlow {m.get('tensorflow', '?')}, Horovod {m.get('horovod', '?')} "
        f"(NCCL built: {nccl}), commit `{m.get('commit', 'unknown')}`.",
        f"Weak scaling: {m.get('days', '?')} days × {m.get('rows_per_day', '?')} rows "
        f"({m.get('train_rows', '?')} training rows), {m.get('epochs', '?')} epochs of "
        f"{m.get('steps_per_epoch', '?')} steps, batch {m.get('batch_size_per_rank', '?')} per rank; "
        "examples/s is the trainer's median over epochs 2+.",
        "",
        "| ranks | examples/s | per-rank examples/s | scaling efficiency | devices |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report["rows"]:
        eff = "–" if r["scaling_efficiency"] is None else f"{r['scaling_efficiency']:.2f}"
        lines.append(
            f"| {r['ranks']} | {fmt_num(r['examples_per_sec'])} | {fmt_num(r['per_rank_examples_per_sec'])} "
            f"| {eff} | {r['devices_summary']} |"
        )
    lines += [
        "",
        f"Scaling efficiency: examples/s at k / (k × examples/s at 1). {report['elapsed_seconds']:.0f} s in all.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--ranks", required=True, help="comma-separated, in run order")
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=None, help="per-run timeout the check used")
    parser.add_argument("--meta", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args(argv)
    ranks = [int(k) for k in args.ranks.split(",") if k]
    meta = _meta(args.meta)
    rows = collect(args.runs_dir, ranks)
    reason = verdict(args.mode, rows, ranks, args.timeout)
    report = {
        "ok": reason is None,
        "reason": reason,
        "mode": args.mode,
        "date": meta.pop("date", None) or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_seconds": float(meta.pop("elapsed_seconds", 0) or 0),
        "meta": meta,
        "rows": rows,
    }
    table = markdown(report)
    report["markdown"] = table
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(report, indent=2) + "\n")
    args.out_json.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {args.out_json} and {args.out_json.with_suffix('.md')}")
    if reason:
        print(f"gpu_check: FAIL: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
