"""Each Horovod rank's share of a training window, read from parquet one row group at a time.

The window's row groups (files in partition order, row groups in file order) are laid end to
end and cut into ``ranks`` contiguous ranges of equal row counts; rank r reads only the row
groups that overlap its range, and of a row group at a boundary only its rows in the range.
So every row of the window goes to exactly one rank, the assignment depends only on the files
(the same on every rank, every run), and a rank reads about 1/N of the window's bytes (plus at
most the two row groups it shares with its neighbours).

Held-out rows are dropped after reading, by the dataset's salted hash of the id, so they never
reach training on any rank; the trainer then takes the same number of steps on every rank (the
smallest shard decides).

Uses pyarrow and numpy only: the control plane's tests import it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    import pandas as pd


@dataclass(frozen=True)
class Piece:
    """Rows ``start``..``stop`` (end excluded) of row group ``row_group`` of ``path``."""

    path: str
    row_group: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def row_groups(files: Sequence[Path | str]) -> list[tuple[str, int, int]]:
    """``(path, row group, rows)`` of every row group of ``files``, in order; reads footers only."""
    import pyarrow.parquet as pq

    out = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        out.extend((str(path), i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups))
    return out


def plan_shards(files: Sequence[Path | str], ranks: int) -> list[list[Piece]]:
    """The pieces each of ``ranks`` ranks reads: contiguous, equal (to a row) ranges of the window."""
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    groups = row_groups(files)
    total = sum(rows for _, _, rows in groups)
    bounds = [total * r // ranks for r in range(ranks + 1)]
    shards: list[list[Piece]] = [[] for _ in range(ranks)]
    offset = 0  # first row of the current row group in the window
    for path, index, rows in groups:
        for r in range(ranks):
            lo, hi = max(bounds[r], offset), min(bounds[r + 1], offset + rows)
            if lo < hi:
                shards[r].append(Piece(path, index, lo - offset, hi - offset))
        offset += rows
    return shards


def read_piece(piece: Piece, columns: Sequence[str]) -> pd.DataFrame:
    """The piece's rows of ``columns`` as a DataFrame (its row group is read, then sliced)."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(piece.path).read_row_group(piece.row_group, columns=list(columns))
    if piece.start or piece.stop < table.num_rows:
        table = table.slice(piece.start, piece.rows)
    return table.to_pandas()


def read_pieces(pieces: Sequence[Piece], columns: Sequence[str]) -> Iterator[pd.DataFrame]:
    """The pieces one at a time, in order: memory holds one row group."""
    for piece in pieces:
        yield read_piece(piece, columns)


def bytes_to_read(pieces: Sequence[Piece], columns: Sequence[str]) -> int:
    """Compressed bytes of ``columns`` in the row groups the pieces read (a row group shared by two
    ranks counts for both)."""
    import pyarrow.parquet as pq

    total = 0
    seen: set[tuple[str, int]] = set()
    metas: dict[str, object] = {}
    for piece in pieces:
        if (piece.path, piece.row_group) in seen:
            continue
        seen.add((piece.path, piece.row_group))
        meta = metas.setdefault(piece.path, pq.ParquetFile(piece.path).metadata)
        group = meta.row_group(piece.row_group)  # type: ignore[attr-defined]
        for j in range(group.num_columns):
            if group.column(j).path_in_schema in columns:
                total += group.column(j).total_compressed_size
    return total


FIT, VALIDATION, HELD_OUT = 0, 1, 2  # what a row of a shard is for


class ShardFeed:
    """One rank's rows, turned into network inputs: kept in memory when they fit
    (``memory_rows``), else read again from parquet every epoch, a row group at a time, through a
    shuffle buffer of ``memory_rows`` rows. Either way memory does not grow past the budget with
    the window.

    ``scan()`` reads the shard once: checks every label, marks each row fit, validation (the
    early-stopping rows, by a hash of the id) or held out (never used), and sums the fit rows'
    numeric inputs for the global normalisation statistics.
    """

    def __init__(
        self,
        dataset,
        spec: dict,
        pieces: Sequence[Piece],
        *,
        validation_fraction: float,
        validation_salt: str,
        pos_weight: float,
        memory_rows: int,
    ) -> None:
        self.dataset = dataset
        self.spec = spec
        self.pieces = list(pieces)
        self.columns = [dataset.id_column, *dataset.feature_columns, dataset.label_column]
        self.validation_fraction = validation_fraction
        self.validation_salt = validation_salt
        self.pos_weight = pos_weight
        self.memory_rows = memory_rows
        self.roles: list = []  # per piece: FIT / VALIDATION / HELD_OUT per row (int8)
        self.fit_rows = 0
        self.validation_rows = 0
        self.sums = None  # numeric inputs of the fit rows: sum, sum of squares (float64)
        self.sample = None  # the first rows' feature columns (the model signature's example)
        self.in_memory = True
        self._fit: list = []  # (inputs, labels, weights) per piece, while they fit
        self._validation: list = []  # (inputs, labels) per piece, while they fit

    def _roles(self, frame) -> tuple:
        import numpy as np

        from include.mlops.trainer.stopping import validation_mask

        labels = self.dataset.binary_labels(frame)  # LabelError on a value neither class
        ids = frame[self.dataset.id_column].to_numpy()
        roles = np.full(len(frame), FIT, dtype=np.int8)
        held = self.dataset.holdout_mask(ids)
        roles[held] = HELD_OUT
        if self.validation_fraction > 0:
            roles[~held & validation_mask(ids, self.validation_fraction, self.validation_salt)] = VALIDATION
        return roles, labels

    def _inputs(self, frame, labels, roles, role):
        import numpy as np

        from include.mlops.trainer.scoring import frame_to_inputs

        rows = roles == role
        inputs = frame_to_inputs(frame[rows], self.spec)
        y = labels[rows].astype(np.float32).reshape(-1, 1)
        if role == VALIDATION:
            return inputs, y[:, 0].astype(np.float64)
        return inputs, y, np.where(y[:, 0] > 0, self.pos_weight, 1.0).astype(np.float32)

    def scan(self) -> str | None:
        """The one pass before training; returns a label problem instead of raising, so that every
        rank can hear of it before any of them stops (see the trainer)."""
        import numpy as np

        from include.mlops.common.dataset import LabelError

        for frame in read_pieces(self.pieces, self.columns):
            if self.sample is None and len(frame):
                self.sample = frame[self.dataset.feature_columns].head(20).reset_index(drop=True)
            try:
                roles, labels = self._roles(frame)
            except LabelError as exc:
                return str(exc)
            self.roles.append(roles)
            fit = self._inputs(frame, labels, roles, FIT)
            numeric = fit[0]["numeric"].astype(np.float64)
            sums = np.concatenate([numeric.sum(0), (numeric**2).sum(0)])
            self.sums = sums if self.sums is None else self.sums + sums
            self.fit_rows += len(numeric)
            self.validation_rows += int((roles == VALIDATION).sum())
            if self.in_memory and self.fit_rows + self.validation_rows <= self.memory_rows:
                self._fit.append(fit)
                self._validation.append(self._inputs(frame, labels, roles, VALIDATION))
            else:
                self.in_memory, self._fit, self._validation = False, [], []
        return None

    @staticmethod
    def _concat(parts: list, n: int) -> tuple:
        import numpy as np

        return tuple(
            {k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]}
            if isinstance(parts[0][i], dict)
            else np.concatenate([p[i] for p in parts])
            for i in range(n)
        )

    def fit_arrays(self) -> tuple:
        """(inputs, labels, weights) of every fit row; only when ``in_memory``."""
        assert self.in_memory and self._fit, "the shard is streamed"
        return self._concat(self._fit, 3)

    def validation_parts(self) -> Iterator[tuple]:
        """(inputs, labels) of the validation rows, a piece at a time."""
        if self.in_memory:
            yield from self._validation
            return
        for i, frame in enumerate(read_pieces(self.pieces, self.columns)):
            roles = self.roles[i]
            if (roles == VALIDATION).any():
                yield self._inputs(frame, self.dataset.binary_labels(frame), roles, VALIDATION)

    def stream(self, seed: int, batch: int) -> Iterator[tuple]:
        """Batches of fit rows for one epoch, read from parquet: the pieces in a seeded order,
        their rows through a shuffle buffer of ``memory_rows``; a remainder carries over, so the
        epoch yields ``fit_rows // batch`` batches."""
        import numpy as np

        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.pieces))
        buffered: list = []
        held = 0

        def drain(parts: list, final: bool):
            inputs, labels, weights = self._concat(parts, 3)
            n = len(labels)
            perm = rng.permutation(n)
            full = (n // batch) * batch
            for start in range(0, full, batch):
                idx = perm[start : start + batch]
                yield {k: v[idx] for k, v in inputs.items()}, labels[idx], weights[idx]
            rest = perm[full:]
            carry = (
                []
                if final or not len(rest)
                else [({k: v[rest] for k, v in inputs.items()}, labels[rest], weights[rest])]
            )
            return carry

        for i in order:
            frame = read_piece(self.pieces[i], self.columns)
            roles = self.roles[i]
            buffered.append(self._inputs(frame, self.dataset.binary_labels(frame), roles, FIT))
            held += int((roles == FIT).sum())
            if held >= self.memory_rows:
                buffered = yield from drain(buffered, final=False)
                held = sum(len(p[1]) for p in buffered)
        if buffered and held:
            yield from drain(buffered, final=True)
