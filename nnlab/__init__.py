"""nnlab: a Keras experiment lab. KerasTuner searches, MLflow tracks, the registry keeps the best.

    import nnlab
    result = nnlab.search("digits", max_trials=4)             # or your own build(hp, spec), your own data
    result.leaderboard, result.champion, result.test_metrics
    nnlab.finetune("digits-cnn", "mnist")
    model = nnlab.load_model("digits-cnn")

`nnlab.search(...)` and `nnlab.finetune(...)` (nnlab/api.py) run what `python -m nnlab.search` and
`python -m nnlab.finetune` run; a user's mistake raises nnlab.NnlabError in one line. `load_model`
imports MLflow inside functions, so that `import nnlab` itself stays light.
"""

from __future__ import annotations

import importlib
import os

from nnlab.errors import NnlabError

# TensorFlow's INFO and WARNING start-up lines (oneDNN, CPU instructions, CUDA not found) when the
# user's own code imports it after nnlab, as a notebook does; a level the user set stays.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
__all__ = ["NnlabError", "finetune", "load_model", "search"]


def __getattr__(name: str):
    """`nnlab.search` and `nnlab.finetune`: the command modules, which called run the library
    functions (nnlab/api.py; `nnlab.search.main` stays the command). Imported when first asked
    for, not here: `python -m nnlab.search` would otherwise find its module imported already."""
    if name in ("search", "finetune"):
        return importlib.import_module(f"nnlab.{name}")
    raise AttributeError(f"module 'nnlab' has no attribute {name!r}")


def load_model(reference: str, tracking_uri: str | None = None):
    """A registered champion as a Keras model: "mnist-cnn" (alias champion), "mnist-cnn@alias",
    "mnist-cnn/3" (version 3), from --tracking-uri / $MLFLOW_TRACKING_URI / mlruns/. It prints
    nothing: the Keras backend starts without its start-up lines, as in nnlab's commands."""
    from nnlab.tracking import load_registered_model, registered_version

    try:
        # The version first, read without creating anything: a store, name, alias or version that
        # is not there is said as such (MLflow would make an empty store where none was).
        return load_registered_model(registered_version(reference, tracking_uri).uri, tracking_uri)
    except NnlabError as error:
        raise error.with_traceback(None) from None
