"""The served model: an MLflow pyfunc around the Keras network (MLflow "models from code").

MLflow ships this file with every logged model, so it is self-contained: it imports nothing
from this repository. The trainer imports ``frame_to_inputs`` from here so that training and
serving turn a DataFrame into network inputs with the very same code.

Feature spec (``feature_spec.json`` beside the network)::

    {"dataset": "card_fraud",
     "numeric": [{"name": "amount", "transform": "log1p"}, ...],
     "categorical": ["merchant_category", ...],
     "label": "is_fraud", "positive": 1, "negative": 0}

The model returns, for each row, the probability that its label is ``positive``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def keras_name(text: str) -> str:
    """A column name as a Keras layer or input name: letters, digits and underscores, a letter first."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", str(text))
    return name if name[:1].isalpha() else f"f_{name}"


def frame_to_inputs(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Network inputs from raw feature columns: one numeric matrix ("numeric"), and one string
    column per categorical feature, keyed by its Keras name (``keras_name``)."""
    missing = [f["name"] for f in spec["numeric"] if f["name"] not in df] + [
        c for c in spec["categorical"] if c not in df
    ]
    if missing:
        raise ValueError(f"model input lacks feature columns: {', '.join(missing)}")
    numeric = []
    for feature in spec["numeric"]:
        col = pd.to_numeric(df[feature["name"]], errors="raise").to_numpy(dtype=np.float64)
        if feature.get("transform") == "log1p":
            col = np.log1p(np.clip(col, 0.0, None))
        numeric.append(col)
    inputs: dict[str, np.ndarray] = {"numeric": np.stack(numeric, axis=1).astype(np.float32)}
    for name in spec["categorical"]:
        inputs[keras_name(name)] = (
            df[name].astype("string").fillna("").to_numpy(dtype=object).astype(str).reshape(-1, 1)
        )
    return inputs


class ProbabilityScorer(PythonModel):
    """Returns, for each row, the probability that its label is the dataset's positive value."""

    def load_context(self, context: Any) -> None:
        import keras

        self.network = keras.models.load_model(context.artifacts["network"], compile=False)
        with open(context.artifacts["feature_spec"]) as fh:
            self.spec = json.load(fh)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return predict_proba(self.network, frame_to_inputs(model_input, self.spec))


def predict_proba(network: Any, inputs: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """Run the network in batches; string columns go in as tf.string tensors."""
    import tensorflow as tf

    n = len(inputs["numeric"])
    out = []
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start : start + batch_size]) for k, v in inputs.items()}
        out.append(np.asarray(network(batch, training=False)).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


mlflow.models.set_model(ProbabilityScorer())
