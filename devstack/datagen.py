"""Seeded, deterministic generator of daily card-transaction partitions.

Each day is drawn from a generator seeded by (seed, date), so a partition is the same
bytes-for-rows on every machine. Fraud is drawn from a known logistic model of the
features; the true probability of each row is written apart from the features (the
"oracle"), so the best achievable score on any rows is known.

Cards appear only as a salted hash token (``tok_<24 hex>``), never as a card number.
Named defects can be injected for tests of the validation gate.

At scale (``--rows 20000000 --files 8``) a day is written as several parquet files, one row
group at a time (``--row-group-rows``, 500,000 by default), each drawn from its own seeded
generator: memory holds one row group, never the day.

CLI: ``python -m devstack.datagen --lake .local/lake --start 2026-01-01 --days 3``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

log = logging.getLogger(__name__)

CATEGORIES = {
    # name: (log-amount mean, log-amount sd, fraud logit effect, weight)
    "grocery": (3.4, 0.6, -0.7, 0.22),
    "restaurants": (3.3, 0.5, -0.4, 0.16),
    "fuel": (3.7, 0.4, -0.2, 0.12),
    "pharmacy": (3.1, 0.6, -0.5, 0.07),
    "travel": (5.6, 0.8, 0.5, 0.05),
    "online_retail": (4.0, 0.9, 0.6, 0.15),
    "electronics": (5.2, 0.9, 1.0, 0.06),
    "gaming": (3.6, 0.9, 0.9, 0.05),
    "jewelry": (5.5, 1.0, 1.2, 0.02),
    "atm_cash": (4.4, 0.6, 0.3, 0.10),
}
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "NG", "IN", "CN"]
COUNTRY_WEIGHTS = [0.34, 0.14, 0.1, 0.08, 0.06, 0.06, 0.05, 0.04, 0.04, 0.03, 0.03, 0.03]
COUNTRY_EFFECT = {"NG": 0.7, "BR": 0.4, "MX": 0.3, "CN": 0.3, "IN": 0.2}
CHANNEL_EFFECT = {"chip": -0.6, "contactless": -0.3, "swipe": 0.4, "ecommerce": 0.5, "atm": 0.2}
DEFECTS = (
    "nulls",
    "missing_column",
    "wrong_type",
    "out_of_range",
    "duplicate_ids",
    "raw_card_numbers",
    "label_rate_shift",
    "feature_drift",
    "future_timestamps",
    "other_day_timestamps",
    "unknown_category",
    "label_not_binary",
    "malformed_card_token",
    "too_few_rows",
)
INTERCEPT = -5.6
# Scales every feature effect; sets how separable fraud is (oracle PR-AUC about 0.6).
SIGNAL = 2.0
CARD_POOL = 40_000
# Rows per parquet row group when a day is written in parts (about 130 MB of this schema in
# memory): a size query engines read well, and what the generator holds at once.
ROW_GROUP_ROWS = 500_000


def _day_rng(seed: int, day: dt.date, part: tuple[int, int] | None = None) -> np.random.Generator:
    """The generator of a day (or of one row group of one of its files: ``part`` = (file, group))."""
    name = f"{seed}:{day.isoformat()}" + (f":{part[0]}:{part[1]}" if part else "")
    key = hashlib.sha256(name.encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "big"))


def _card_tokens(card_ids: np.ndarray, seed: int) -> np.ndarray:
    # The synthetic card number never leaves this function: only its salted hash does.
    salt = f"card-token:{seed}".encode()
    tokens = {}
    for cid in np.unique(card_ids):
        pan = f"4{int(cid):015d}"
        tokens[cid] = "tok_" + hashlib.blake2b(salt + pan.encode(), digest_size=12).hexdigest()
    return np.array([tokens[c] for c in card_ids], dtype=object)


def fraud_logit(
    amount: np.ndarray,
    category_effect: np.ndarray,
    hour: np.ndarray,
    distance_km: np.ndarray,
    card_present: np.ndarray,
    new_device: np.ndarray,
    velocity_1h: np.ndarray,
    velocity_24h: np.ndarray,
    account_age_days: np.ndarray,
    country_mismatch: np.ndarray,
    channel_effect: np.ndarray,
    country_effect: np.ndarray,
) -> np.ndarray:
    """The true log-odds of fraud; the generator's ground truth."""
    night = ((hour <= 5) | (hour >= 23)).astype(float)
    return INTERCEPT + SIGNAL * (
        0.85 * np.log(amount / 50.0)
        + category_effect
        + 1.0 * night
        + 0.55 * np.log1p(distance_km / 10.0)
        - 0.6 * card_present
        + 1.4 * new_device
        + 0.45 * velocity_1h
        + 0.05 * velocity_24h
        - 0.45 * np.log1p(account_age_days / 30.0)
        + 1.2 * country_mismatch
        + channel_effect
        + country_effect
    )


def generate_day(
    day: dt.date, rows: int, seed: int = 7, *, part: tuple[int, int] | None = None, first_id: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day's transactions and the oracle (true fraud probability per row).

    With ``part``, one row group of a day written in parts: its own generator, and ids from
    ``first_id`` on, so the parts of a day never share an id.
    """
    import pandas as pd

    rng = _day_rng(seed, day, part)
    cat_names = list(CATEGORIES)
    cat_w = np.array([CATEGORIES[c][3] for c in cat_names])
    cat_idx = rng.choice(len(cat_names), size=rows, p=cat_w / cat_w.sum())
    category = np.array(cat_names, dtype=object)[cat_idx]
    mu = np.array([CATEGORIES[c][0] for c in cat_names])[cat_idx]
    sd = np.array([CATEGORIES[c][1] for c in cat_names])[cat_idx]
    amount = np.round(np.clip(np.exp(rng.normal(mu, sd)), 0.5, 25_000.0), 2)

    # Hours follow a daily cycle with a night trough.
    hour_w = np.array([2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 10, 9, 9, 9, 9, 9, 9, 8, 7, 6, 4, 3.0])
    hour = rng.choice(24, size=rows, p=hour_w / hour_w.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=rows)
    event_time = pd.Timestamp(day.isoformat(), tz="UTC") + pd.to_timedelta(seconds, unit="s")

    online = np.isin(category, ["online_retail", "gaming"]) | (rng.random(rows) < 0.08)
    atm = category == "atm_cash"
    card_present = (~online).astype(np.int8)
    channel = np.where(
        atm,
        "atm",
        np.where(online, "ecommerce", rng.choice(["chip", "contactless", "swipe"], size=rows, p=[0.5, 0.4, 0.1])),
    ).astype(object)

    distance = np.round(rng.exponential(8.0, size=rows) * np.where(rng.random(rows) < 0.05, 30, 1), 2)
    new_device = (rng.random(rows) < np.where(online, 0.08, 0.01)).astype(np.int8)
    velocity_1h = rng.poisson(0.4, size=rows).astype(np.int32)
    velocity_24h = (velocity_1h + rng.poisson(2.5, size=rows)).astype(np.int32)
    account_age = rng.integers(0, 3650, size=rows).astype(np.int32)
    home = rng.choice(len(COUNTRIES), size=rows, p=COUNTRY_WEIGHTS)
    abroad = rng.random(rows) < 0.07
    merchant = np.where(abroad, rng.choice(len(COUNTRIES), size=rows, p=COUNTRY_WEIGHTS), home)
    merchant_country = np.array(COUNTRIES, dtype=object)[merchant]
    country_mismatch = (merchant != home).astype(np.int8)

    logit = fraud_logit(
        amount,
        np.array([CATEGORIES[c][2] for c in cat_names])[cat_idx],
        hour,
        distance,
        card_present,
        new_device,
        velocity_1h,
        velocity_24h,
        account_age,
        country_mismatch,
        np.vectorize(CHANNEL_EFFECT.get)(channel).astype(float),
        np.array([COUNTRY_EFFECT.get(c, 0.0) for c in COUNTRIES])[merchant],
    )
    prob = 1.0 / (1.0 + np.exp(-logit))
    is_fraud = (rng.random(rows) < prob).astype(np.int8)

    card_ids = rng.integers(0, CARD_POOL, size=rows)
    store = rng.integers(1, 9999, size=rows)
    descriptor = np.array(
        [
            f"{c.upper().replace('_', ' ')} #{s:04d} {m}"
            for c, s, m in zip(category, store, merchant_country, strict=True)
        ],
        dtype=object,
    )
    ids = np.array([f"T{day:%Y%m%d}N{i:07d}" for i in range(first_id, first_id + rows)], dtype=object)

    features = pd.DataFrame(
        {
            "transaction_id": pd.array(ids, dtype="string"),
            "event_time": event_time,
            "card_token": pd.array(_card_tokens(card_ids, seed), dtype="string"),
            "merchant_descriptor": pd.array(descriptor, dtype="string"),
            "merchant_category": pd.array(category, dtype="string"),
            "channel": pd.array(channel, dtype="string"),
            "merchant_country": pd.array(merchant_country, dtype="string"),
            "amount": amount.astype(np.float64),
            # Integer columns are int64: GX vectorises range checks only for int64/float64
            # (int8/int32 columns take a per-row Python path, about 4x slower on 1M rows).
            "hour": hour.astype(np.int64),
            "distance_from_home_km": distance.astype(np.float64),
            "card_present": card_present.astype(np.int64),
            "new_device": new_device.astype(np.int64),
            "velocity_1h": velocity_1h.astype(np.int64),
            "velocity_24h": velocity_24h.astype(np.int64),
            "account_age_days": account_age.astype(np.int64),
            "country_mismatch": country_mismatch.astype(np.int64),
            "is_fraud": is_fraud.astype(np.int64),
        }
    )
    oracle = pd.DataFrame({"transaction_id": features["transaction_id"], "fraud_probability": prob.astype(np.float64)})
    return features, oracle


def _luhn_pan(rng: np.random.Generator) -> str:
    digits = [4, *rng.integers(0, 10, size=14).tolist()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return f"{s[0:4]} {s[4:8]} {s[8:12]} {s[12:16]}"


def inject_defect(df: pd.DataFrame, defect: str, seed: int = 0) -> pd.DataFrame:
    """Return a copy of `df` with one named defect; see DEFECTS."""
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(out)
    some = rng.choice(n, size=max(1, n // 50), replace=False)
    if defect == "nulls":
        out.loc[out.index[some], "amount"] = np.nan
    elif defect == "missing_column":
        out = out.drop(columns=["merchant_category"])
    elif defect == "wrong_type":
        out["amount"] = out["amount"].map(lambda v: f"{v:.2f}").astype("string")
    elif defect == "out_of_range":
        out.loc[out.index[some], "amount"] = -out.loc[out.index[some], "amount"]
        out.loc[out.index[some[: len(some) // 2]], "hour"] = 27
    elif defect == "duplicate_ids":
        out.loc[out.index[some], "transaction_id"] = out["transaction_id"].iloc[0]
    elif defect == "raw_card_numbers":
        out.loc[out.index[some], "merchant_descriptor"] = [f"REFUND CARD {_luhn_pan(rng)}" for _ in range(len(some))]
    elif defect == "label_rate_shift":
        flip = rng.random(n) < 0.10
        out.loc[flip, "is_fraud"] = 1
    elif defect == "feature_drift":
        out["amount"] = np.round(out["amount"] * 6.0, 2)
    elif defect == "future_timestamps":
        import pandas as pd

        out.loc[out.index[some], "event_time"] = pd.Timestamp("2099-01-01", tz="UTC")
    elif defect == "other_day_timestamps":
        out.loc[out.index[some], "event_time"] = out.loc[out.index[some], "event_time"] - np.timedelta64(1, "D")
    elif defect == "unknown_category":
        out.loc[out.index[some], "merchant_category"] = "casino"
    elif defect == "label_not_binary":
        out.loc[out.index[some], "is_fraud"] = 2
    elif defect == "malformed_card_token":
        out.loc[out.index[some], "card_token"] = out.loc[out.index[some], "card_token"].str.upper()
    elif defect == "too_few_rows":
        out = out.head(500).copy()
    return out


def _write_atomic(directories: list[Path], write: Callable[..., None]) -> None:
    """Fill each of `directories` through ``write(*staging)``: each replaced whole or not at all."""
    staging: list[Path] = []
    try:
        for directory in directories:
            directory.parent.mkdir(parents=True, exist_ok=True)
            staging.append(Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent)))
        write(*staging)
        for directory, filled in zip(directories, staging, strict=True):
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(filled, directory)
    finally:
        for filled in staging:
            if filled.exists():
                shutil.rmtree(filled)


def _write_parts(
    features_dir: Path, oracle_dir: Path, day: dt.date, rows: int, seed: int, files: int, row_group_rows: int
) -> None:
    """A day as `files` parquet files written one row group at a time (rows spread evenly)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first_id = 0
    for f in range(files):
        name = f"part-{f:05d}.parquet"
        left = rows // files + (1 if f < rows % files else 0)
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            group = 0
            while left > 0:
                n = min(row_group_rows, left)
                features, oracle = generate_day(day, n, seed, part=(f, group), first_id=first_id)
                for kind, frame, directory in (("features", features, features_dir), ("oracle", oracle, oracle_dir)):
                    schema = writers[kind].schema if kind in writers else None  # every group as the first
                    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                    if kind not in writers:
                        writers[kind] = pq.ParquetWriter(directory / name, table.schema)
                    writers[kind].write_table(table, row_group_size=n)
                first_id, left, group = first_id + n, left - n, group + 1
        finally:
            for writer in writers.values():
                writer.close()


def write_day(
    lake: Path,
    day: dt.date,
    rows: int,
    seed: int = 7,
    defect: str | None = None,
    location: str = "transactions/date={date}",
    files: int = 1,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> Path:
    """Generate and write one partition (and its oracle); returns the partition directory.

    Up to `row_group_rows` rows in one file: one frame, as always. More rows, or several
    `files`: written in parts, one row group in memory at a time (defects only in one frame).
    """
    if files < 1 or row_group_rows < 1 or rows < files:
        raise ValueError(
            f"need files >= 1, row_group_rows >= 1 and rows >= files; got {files}, {row_group_rows}, {rows}"
        )
    part = Path(lake) / location.format(date=day.isoformat())
    oracle_dir = Path(lake) / "_oracle" / location.format(date=day.isoformat())
    if files == 1 and rows <= row_group_rows:
        features, oracle = generate_day(day, rows, seed)
        if defect:
            features = inject_defect(features, defect, seed)

        def write(features_dir: Path, oracle_dir: Path) -> None:
            features.to_parquet(features_dir / "part-00000.parquet", index=False)
            oracle.to_parquet(oracle_dir / "part-00000.parquet", index=False)

    else:
        if defect:
            raise ValueError("defects are injected into a day written as one frame (one file, one row group)")

        def write(features_dir: Path, oracle_dir: Path) -> None:
            _write_parts(features_dir, oracle_dir, day, rows, seed, files, row_group_rows)

    _write_atomic([part, oracle_dir], write)
    log.info("wrote %s (%d rows%s)", part, rows, f", defect={defect}" if defect else "")
    return part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=None, help="default: the configured lake (MLOPS_LAKE)")
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--defect", choices=DEFECTS)
    parser.add_argument("--files", type=int, default=1, help="parquet files per day (rows spread evenly)")
    parser.add_argument(
        "--row-group-rows", type=int, default=ROW_GROUP_ROWS, help="rows per row group, and per part held in memory"
    )
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    if args.files < 1 or args.row_group_rows < 1:
        parser.error("--files and --row-group-rows must be at least 1")
    if args.defect and (args.files > 1 or args.rows > args.row_group_rows):
        parser.error("--defect needs the day in one frame: one file, --rows at most --row-group-rows")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.lake is None:
        from include.mlops.settings import get_settings

        args.lake = get_settings().lake
    for i in range(args.days):
        day = args.start + dt.timedelta(days=i)
        write_day(
            args.lake, day, args.rows, args.seed, args.defect, files=args.files, row_group_rows=args.row_group_rows
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
