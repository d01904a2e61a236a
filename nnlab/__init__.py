"""nnlab: a Keras experiment lab. KerasTuner searches, MLflow tracks, the registry keeps the best.
`load_model` imports MLflow inside functions, so that `import nnlab` itself stays light."""

from __future__ import annotations

__version__ = "0.1.0"


def load_model(reference: str, tracking_uri: str | None = None):
    """A registered champion as a Keras model: "mnist-cnn" (alias champion), "mnist-cnn@alias",
    "mnist-cnn/3" (version 3), from --tracking-uri / $MLFLOW_TRACKING_URI / mlruns/. It prints
    nothing: TensorFlow starts without its start-up lines, as in nnlab's commands."""
    from nnlab.tracking import load_registered_model

    return load_registered_model(reference, tracking_uri)
