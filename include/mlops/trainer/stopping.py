"""When training stops, and how big a step is: fitted to the data, not fixed.

- ``EarlyStopping``: stop when the validation loss (rows carved from the training rows, never
  the holdout) has not improved for ``patience`` epochs, and keep the best epoch's weights;
  ``epochs`` is only a cap. Every rank feeds it the same allreduced loss, so every rank stops
  at the same epoch without another collective call.
- ``batch_per_rank``: a step on a small table must not eat a tenth of it. The requested batch
  is shrunk until each epoch has at least ``min_steps`` steps (10k rows with 2 ranks: 50 steps of
  80 rows instead of 7 of 512); tables large enough keep the batch they asked for.

Pure Python (no TensorFlow) so that it is tested without the trainer environment.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

MIN_BATCH = 16


def batch_per_rank(rows_per_rank: int, requested: int, min_steps: int) -> int:
    """The batch each rank uses: the requested one, or smaller so an epoch has ``min_steps`` steps."""
    if rows_per_rank <= 0 or min_steps <= 0:
        return requested
    fitted = rows_per_rank // min_steps
    return max(min(requested, MIN_BATCH), min(requested, fitted))


def validation_mask(ids: Any, fraction: float, salt: str) -> Any:
    """True for the training rows kept aside to decide when to stop: a salted hash of the id,
    so every rank (and every rerun) picks the same rows."""
    import numpy as np

    threshold = int(fraction * 2**64)
    key = salt.encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(key + str(i).encode(), digest_size=8).digest(), "big") < threshold
            for i in ids
        ),
        dtype=bool,
        count=len(ids),
    )


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float = 1e-4
    best_loss: float = math.inf
    best_epoch: int = 0
    waited: int = 0
    history: list[float] = field(default_factory=list)

    def update(self, epoch: int, loss: float) -> bool:
        """Record an epoch's validation loss; True when it is the best so far."""
        self.history.append(loss)
        if math.isfinite(loss) and loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.waited = loss, epoch, 0
            return True
        self.waited += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.waited >= self.patience

    def reason(self, epoch: int, cap: int) -> str:
        """One line: why training ended at ``epoch``."""
        best = f"best validation loss {self.best_loss:.5f} at epoch {self.best_epoch}"
        if self.should_stop:
            return f"early stop at epoch {epoch}: no improvement for {self.patience} epochs ({best})"
        if epoch >= cap:
            return f"reached the cap of {cap} epochs ({best})"
        return f"stopped at epoch {epoch} ({best})"

    def state(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "waited": self.waited}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self.best_loss = float(state["best_loss"])
            self.best_epoch = int(state["best_epoch"])
            self.waited = int(state["waited"])
