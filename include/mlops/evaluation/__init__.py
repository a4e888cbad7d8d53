"""Stage 3, evaluation: the pure promotion gate and its verdict."""
