"""Evaluation scores the holdout a row group at a time (include/mlops/trainer/evaluate.py): the
slice metrics from the kept codes equal those from the whole frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.mlops.trainer.evaluate import HoldoutScores, binary_metrics, skipped_slices, slice_metrics

pytestmark = pytest.mark.unit


def test_chunked_scores_give_the_metrics_of_the_whole_holdout():
    rng = np.random.default_rng(3)
    n = 6000
    frame = pd.DataFrame(
        {
            "channel": rng.choice(["chip", "swipe", "atm", None], n, p=[0.5, 0.3, 0.19, 0.01]),
            "country": rng.choice(["US", "GB", "NG"], n, p=[0.7, 0.29, 0.01]),  # NG: too few positives
        }
    )
    y = (rng.random(n) < 0.1).astype(np.int64)
    p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    held = HoldoutScores(["channel", "country"])
    for start in range(0, n, 1700):  # uneven chunks; each sees values in another order
        rows = slice(start, start + 1700)
        held.add(frame.iloc[rows], y[rows], {"candidate": p[rows]})
    assert np.array_equal(held.y(), y) and np.array_equal(held.p("candidate"), p)
    kept = held.slice_frame()
    assert slice_metrics(kept, y, p, ["channel", "country"]) == slice_metrics(frame, y, p, ["channel", "country"])
    skipped = skipped_slices(kept, y, ["channel", "country"])
    assert skipped == skipped_slices(frame, y, ["channel", "country"])
    assert "country=NG" in skipped and "channel=<null>" in skipped
    assert binary_metrics(held.y(), held.p("candidate")) == binary_metrics(y, p)
