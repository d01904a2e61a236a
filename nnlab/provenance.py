"""What produced a run: the versions of Python and the libraries, and nnlab's git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from nnlab.accelerators import BACKEND_PACKAGES, backend_name

# Tag name on the search's parent run -> the distribution whose version it records.
VERSION_TAGS = {"nnlab.tensorflow_version": "tensorflow", "nnlab.keras_version": "keras",
                "nnlab.keras_tuner_version": "keras-tuner", "nnlab.mlflow_version": "mlflow",
                "nnlab.version": "nnlab"}


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() if result.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def backend_requirement() -> str:
    """The Keras backend's package pinned as this process runs it ("jax==0.10.2")."""
    return f"{BACKEND_PACKAGES[backend_name()]}=={backend_version()}"


def backend_version() -> str:
    return package_version(BACKEND_PACKAGES[backend_name()])


def provenance_tags() -> dict:
    """Python, TensorFlow, Keras, KerasTuner, MLflow and nnlab versions, the Keras backend that
    trained and its version, and nnlab's git commit."""
    tags = {tag: package_version(name) for tag, name in VERSION_TAGS.items()}
    return tags | {"nnlab.keras_backend": backend_name(), "nnlab.keras_backend_version": backend_version(),
                   "nnlab.python_version": platform.python_version(), "nnlab.git_commit": git_commit()}
