"""Each rank's shard of a training window (include/mlops/trainer/shards.py), on real parquet
files written by the generator in uneven parts: what every rank reads, trains on and streams."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from devstack.datagen import write_day
from include.mlops.common.dataset import load_dataset_config
from include.mlops.trainer.model import feature_spec
from include.mlops.trainer.shards import FIT, HELD_OUT, VALIDATION, ShardFeed, bytes_to_read, plan_shards, read_pieces
from tests.conftest import DAY0, ROOT

pytestmark = pytest.mark.unit

CFG = load_dataset_config(ROOT / "datasets" / "card_fraud.yaml")
COLUMNS = [CFG.id_column, *CFG.feature_columns, CFG.label_column]


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """Three days of uneven parts: one file; three files in groups of at most 700; two files in one group each."""
    lake = tmp_path_factory.mktemp("lake")
    write_day(lake, DAY0, 2000)
    write_day(lake, DAY0 + dt.timedelta(days=1), 3100, files=3, row_group_rows=700)
    write_day(lake, DAY0 + dt.timedelta(days=2), 2900, files=2, row_group_rows=1500)
    files = [f for i in range(3) for f in CFG.partition_files(lake, DAY0 + dt.timedelta(days=i))]
    return files, pd.concat([pd.read_parquet(f, columns=COLUMNS) for f in files], ignore_index=True)


def feed(pieces, memory_rows=1_000_000):
    return ShardFeed(
        CFG,
        feature_spec(CFG),
        pieces,
        validation_fraction=0.1,
        validation_salt=f"{CFG.holdout_salt}:stop",
        pos_weight=2.0,
        memory_rows=memory_rows,
    )


def ids_by_role(shard: ShardFeed) -> dict[int, list]:
    out: dict[int, list] = {FIT: [], VALIDATION: [], HELD_OUT: []}
    for frame, roles in zip(read_pieces(shard.pieces, [CFG.id_column]), shard.roles, strict=True):
        for role in out:
            out[role].extend(frame[CFG.id_column][roles == role])
    return out


def test_the_window_has_the_uneven_layout_the_tests_need(window):
    files, frame = window
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    assert len(files) == 6 and groups == [1, 2, 2, 2, 1, 1] and len(frame) == 8000


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_every_row_goes_to_exactly_one_rank_and_shards_are_equal(window, ranks):
    files, frame = window
    shards = plan_shards(files, ranks)
    covered = Counter((p.path, p.row_group, row) for shard in shards for p in shard for row in range(p.start, p.stop))
    assert len(covered) == len(frame) and set(covered.values()) == {1}
    sizes = [sum(p.rows for p in shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(frame)
    assert plan_shards(files, ranks) == shards  # the same on every rank, every time


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_ranks_train_on_every_training_row_once_and_never_on_a_held_out_row(window, ranks):
    files, frame = window
    held_out = set(frame[CFG.id_column][CFG.holdout_mask(frame[CFG.id_column].to_numpy())])
    seen: Counter = Counter()
    for pieces in plan_shards(files, ranks):
        shard = feed(pieces)
        assert shard.scan() is None
        roles = ids_by_role(shard)
        assert not held_out & (set(roles[FIT]) | set(roles[VALIDATION]))
        assert set(roles[HELD_OUT]) <= held_out
        assert (shard.fit_rows, shard.validation_rows) == (len(roles[FIT]), len(roles[VALIDATION]))
        seen.update(roles[FIT] + roles[VALIDATION])
        inputs, labels, weights = shard.fit_arrays()
        assert len(inputs["numeric"]) == len(labels) == len(weights) == shard.fit_rows
    training = set(frame[CFG.id_column]) - held_out
    assert set(seen) == training and set(seen.values()) == {1}


def test_a_rank_reads_its_share_of_the_bytes_plus_at_most_the_two_row_groups_at_its_edges(window, tmp_path):
    files, _ = window
    for ranks in (2, 3):
        for shard in plan_shards(files, ranks):
            partial = [p for p in shard if p.rows < pq.ParquetFile(p.path).metadata.row_group(p.row_group).num_rows]
            assert len(partial) <= 2 and all(p in (shard[0], shard[-1]) for p in partial)
    # Row groups small against the shards (as the generator writes them at scale): about 1/N.
    for i in range(3):
        write_day(tmp_path, DAY0 + dt.timedelta(days=i), 3000, files=2, row_group_rows=250)
    files = [f for i in range(3) for f in CFG.partition_files(tmp_path, DAY0 + dt.timedelta(days=i))]
    whole = bytes_to_read(plan_shards(files, 1)[0], COLUMNS)
    fractions = [bytes_to_read(shard, COLUMNS) / whole for shard in plan_shards(files, 3)]
    assert all(1 / 3 - 0.03 < f < 1 / 3 + 2 * 250 / 9000 + 0.03 for f in fractions), fractions


def test_a_shard_over_the_memory_budget_streams_every_fit_row_once_an_epoch(window):
    files, _ = window
    pieces = plan_shards(files, 2)[1]
    kept, streamed = feed(pieces), feed(pieces, memory_rows=1000)
    assert kept.scan() is None and streamed.scan() is None
    assert kept.in_memory and not streamed.in_memory
    assert (streamed.fit_rows, streamed.validation_rows) == (kept.fit_rows, kept.validation_rows)
    np.testing.assert_allclose(streamed.sums, kept.sums)  # the same normalisation statistics

    def rows(batches):
        return [tuple(r) for inputs, _, _ in batches for r in inputs["numeric"].round(5)]

    batch = 64
    epoch = list(streamed.stream([42, 1, 1], batch))
    assert len(epoch) == kept.fit_rows // batch and {len(b[1]) for b in epoch} == {batch}
    all_fit = Counter(tuple(r) for r in kept.fit_arrays()[0]["numeric"].round(5))
    drawn = Counter(rows(epoch))
    assert not drawn - all_fit  # only fit rows, none twice
    assert rows(streamed.stream([42, 1, 1], batch)) == rows(epoch)  # deterministic for a seed
    assert rows(streamed.stream([42, 2, 1], batch)) != rows(epoch)  # another epoch, another order
    val = [(len(i["numeric"]), len(y)) for i, y in streamed.validation_parts()]
    assert sum(n for n, _ in val) == kept.validation_rows


def test_a_label_neither_class_is_reported_not_raised(tmp_path):
    write_day(tmp_path, DAY0, 500)
    (path,) = CFG.partition_files(tmp_path, DAY0)
    frame = pd.read_parquet(path)
    frame.loc[3, CFG.label_column] = 7
    frame.to_parquet(path)
    problem = feed(plan_shards([path], 1)[0]).scan()
    assert problem and CFG.label_column in problem and "7" in problem
