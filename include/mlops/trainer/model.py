"""Keras network for tabular binary classification: embeddings for categoricals, MLP on top."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.mlops.trainer.scoring import keras_name

if TYPE_CHECKING:
    import keras
    import numpy as np


def feature_spec(cfg: Any) -> dict[str, Any]:
    """The serving contract for a dataset config (see scoring.py)."""
    spec = {
        "dataset": cfg.name,
        "numeric": [{"name": f.name, "transform": f.transform} for f in cfg.numeric_features],
        "categorical": list(cfg.categorical_features),
        "vocabularies": {k: list(v) for k, v in cfg.categorical_features.items()},
        "label": cfg.label_column,
        "positive": cfg.label_positive,
        "negative": cfg.label_negative,
    }
    _check_keras_names(spec)
    return spec


def _check_keras_names(spec: dict[str, Any]) -> None:
    """Each categorical feature needs its own Keras input name, other than the numeric input's."""
    taken = {"numeric": "the numeric input"}
    for name in spec["categorical"]:
        key = keras_name(name)
        if key in taken:
            raise ValueError(
                f"dataset {spec.get('dataset')!r}: categorical feature {name!r} and {taken[key]} would share "
                f"the Keras input name {key!r}; rename one"
            )
        taken[key] = f"categorical feature {name!r}"


def build_network(
    spec: dict[str, Any],
    mean: np.ndarray,
    variance: np.ndarray,
    hidden: tuple[int, ...] = (64, 32),
    dropout: float = 0.1,
    seed: int = 0,
) -> keras.Model:
    """Normalised numerics + one embedding per categorical -> MLP -> sigmoid: the probability
    that the label is the dataset's positive value. The model is named ``<dataset>_mlp``.

    Normalisation statistics are passed in (computed over all ranks), and vocabularies are
    fixed by the dataset config, so every rank builds an identical network.
    """
    import keras

    numeric_in = keras.Input(shape=(len(spec["numeric"]),), dtype="float32", name="numeric")
    inputs: dict[str, keras.KerasTensor] = {"numeric": numeric_in}
    parts = [keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(numeric_in)]
    _check_keras_names(spec)
    for feature in spec["categorical"]:
        vocab = spec["vocabularies"][feature]
        name = keras_name(feature)
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
        name="probability",
    )(x)
    return keras.Model(inputs=inputs, outputs=out, name=f"{keras_name(spec.get('dataset') or 'binary')}_mlp")
