"""Keras network for tabular binary classification: embeddings for categoricals, MLP on top."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    import numpy as np


def feature_spec(cfg: Any) -> dict[str, Any]:
    """The serving contract for a dataset config (see scoring.py)."""
    return {
        "numeric": [{"name": f.name, "transform": f.transform} for f in cfg.numeric_features],
        "categorical": list(cfg.categorical_features),
        "vocabularies": {k: list(v) for k, v in cfg.categorical_features.items()},
        "label": cfg.label_column,
    }


def build_network(
    spec: dict[str, Any],
    mean: np.ndarray,
    variance: np.ndarray,
    hidden: tuple[int, ...] = (64, 32),
    dropout: float = 0.1,
    seed: int = 0,
) -> keras.Model:
    """Normalised numerics + one embedding per categorical -> MLP -> sigmoid.

    Normalisation statistics are passed in (computed over all ranks), and vocabularies are
    fixed by the dataset config, so every rank builds an identical network.
    """
    numeric_in = keras.Input(shape=(len(spec["numeric"]),), dtype="float32", name="numeric")
    inputs: dict[str, keras.KerasTensor] = {"numeric": numeric_in}
    parts = [keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(numeric_in)]
    for name in spec["categorical"]:
        vocab = spec["vocabularies"][name]
        cat_in = keras.Input(shape=(1,), dtype="string", name=name)
        inputs[name] = cat_in
        ids = keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=1, name=f"{name}_lookup")(cat_in)
        dim = min(8, max(2, round(len(vocab) ** 0.5) + 1))
        emb = keras.layers.Embedding(
            len(vocab) + 1,
            dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name=f"{name}_embedding",
        )(ids)
        parts.append(keras.layers.Flatten(name=f"{name}_flat")(emb))
    x = keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i + 1),
            name=f"dense_{i}",
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed + 100 + i, name=f"dropout_{i}")(x)
    out = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 99),
        name="fraud_probability",
    )(x)
    return keras.Model(inputs=inputs, outputs=out, name="fraud_mlp")
