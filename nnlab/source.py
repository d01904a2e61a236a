"""The trained model a fine-tune starts from: a registered model or a `.keras` file, resolved
and loaded once, before anything is created. `nnlab.tracking` reads the registry; this module says
what a source is and what of it a fine-tune records (its lineage).
Keras and MLflow are imported inside functions, when a source is loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nnlab.errors import SourceError, TrackingError


@dataclass(frozen=True)
class Source:
    model: object  # keras.Model, as loaded: builds copy it, nothing trains or changes it
    tags: dict  # the lineage a fine-tune's runs and registered versions carry


def is_file_reference(reference: str) -> bool:
    return reference.endswith(".keras") or Path(reference).is_file()


def source_label(reference: str) -> str:
    """What a fine-tune from `reference` is named after (config.tuning_name, without loading
    anything): the registered name ("models:/mnist-cnn@champion", "mnist-cnn/3" -> "mnist-cnn"),
    or a file's stem, in the letters a run or model name may hold."""
    if is_file_reference(reference):
        label = Path(reference).stem
    else:
        label = re.split(r"[@/]", reference.removeprefix("models:/"), maxsplit=1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.") or "source"


def found_source(reference: str, tracking_uri: str | None = None):
    """Where the source is, read without loading it (a fine-tune says a missing one before it
    loads its data): the file's Path, or the registered version (tracking.RegisteredVersion); a
    SourceError where there is none."""
    if is_file_reference(reference):
        path = Path(reference)
        if not path.is_file():
            raise SourceError(f"source model file {path} does not exist")
        return path
    from nnlab.tracking import registered_version

    try:
        return registered_version(reference, tracking_uri, or_else=" or name a .keras file")
    except TrackingError as error:
        raise SourceError(str(error)) from None


def load_source(reference: str, tracking_uri: str | None = None) -> Source:
    """The source model and its lineage; a SourceError when there is none to be had."""
    import keras

    found = found_source(reference, tracking_uri)
    if isinstance(found, Path):
        path = found
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a file it cannot read
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise SourceError(f"{path} is not a Keras model Keras can load ({reason})") from None
        tags = {"nnlab.source": str(path.resolve())}
    else:
        from nnlab.tracking import load_registered_model

        version = found
        try:
            model = load_registered_model(version.uri, tracking_uri)
        except TrackingError as error:
            raise SourceError(str(error)) from None
        tags = {"nnlab.source": version.name, "nnlab.source_version": version.version,
                "nnlab.source_run_id": version.run_id or ""}
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or len(model.outputs) != 1:
        if len(model.inputs) > 1 and all(tuple(tensor.shape) == (None, 1) for tensor in model.inputs):
            takes = f"a table's {len(model.inputs)} columns, one input each"  # nnlab's table models
        else:
            takes = "input " + ", ".join(str(tuple(tensor.shape)) for tensor in model.inputs)
        raise SourceError(f"{reference} takes {takes}: a fine-tune needs a model of one image input "
                          "(height, width, channels) and one output")
    return Source(model=model, tags=tags)
