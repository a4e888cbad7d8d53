"""When training stops and how big a step is (include/mlops/trainer/stopping.py)."""

import numpy as np
import pytest

from include.mlops.trainer.stopping import EarlyStopping, batch_per_rank, validation_mask

pytestmark = pytest.mark.unit


def test_small_tables_get_smaller_batches_large_ones_keep_theirs():
    assert batch_per_rank(3_600, 512, 50) == 72  # 10k rows, 2 ranks: 50 steps, not 7
    assert batch_per_rank(1_000_000, 512, 50) == 512
    assert batch_per_rank(100, 512, 50) == 16  # never below the floor
    assert batch_per_rank(100, 8, 50) == 8  # nor above what was asked


def test_stops_after_patience_epochs_without_improvement_and_names_the_best():
    stop = EarlyStopping(patience=2)
    losses = [0.5, 0.4, 0.41, 0.39, 0.395, 0.40]
    stopped_at = None
    for epoch, loss in enumerate(losses, start=1):
        stop.update(epoch, loss)
        if stop.should_stop:
            stopped_at = epoch
            break
    assert stopped_at == 6 and stop.best_epoch == 4
    assert (
        stop.reason(6, 20)
        == "early stop at epoch 6: no improvement for 2 epochs (best validation loss 0.39000 at epoch 4)"
    )


def test_a_nan_loss_is_never_the_best_and_the_cap_is_named():
    stop = EarlyStopping(patience=5)
    stop.update(1, 0.3)
    assert stop.update(2, float("nan")) is False and stop.best_epoch == 1
    assert stop.reason(2, 2).startswith("reached the cap of 2 epochs")


def test_state_survives_a_resume():
    stop = EarlyStopping(patience=3)
    stop.update(1, 0.3)
    stop.update(2, 0.31)
    again = EarlyStopping(patience=3)
    again.restore(stop.state())
    assert (again.best_epoch, again.waited, again.best_loss) == (1, 1, 0.3)


def test_validation_rows_are_the_same_on_every_call_and_about_the_fraction():
    ids = np.arange(20_000)
    mask = validation_mask(ids, 0.1, "s")
    assert (mask == validation_mask(ids, 0.1, "s")).all()
    assert 0.09 < mask.mean() < 0.11
    assert (mask != validation_mask(ids, 0.1, "other")).any()
