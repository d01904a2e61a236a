"""`python -m nnlab.predict MODEL FILE...`: a registered model's predictions, one line per input.

MODEL is a registered name as `nnlab.load_model` takes it ("mnist-cnn", its champion;
"mnist-cnn@ALIAS", "mnist-cnn/3"). A model over images reads image files (any format Pillow
opens), decoded and resized to its input as training reads an image folder, grey or colour as
it takes them; a model over a table
reads CSV files, one prediction per row (columns the model does not take, the target say, are
left aside), and a model over arrays of features (`nnlab.search(data=(x, y))`) reads CSV rows of
that many numbers, in its columns' order. A classifier prints the most probable class, by name where the registered version
names them (`nnlab.class_names`), with its probability; a regression prints the value.

A file the model cannot take is one line on stderr naming it; the others are still predicted,
and the exit code is 2. TensorFlow, MLflow, pandas and Pillow are imported inside functions, so
that a mistake in the arguments answers at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nnlab import cli
from nnlab.accelerators import start_backend
from nnlab.data.folders import read_image
from nnlab.data.tables import NotText, parsed_csv
from nnlab.errors import InputError, TrackingError, print_error

PROG = "nnlab.predict"
BATCH_SIZE = 256


def parse_args(argv=None):
    parser = cli.Parser(short_name=PROG, prog="python -m nnlab.predict",
                        description="Predict with a registered model: image files, or CSV files of rows.")
    parser.add_argument("model", help="a registered model: mnist-cnn (its champion), mnist-cnn@ALIAS, mnist-cnn/VERSION")
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files, or CSV files of rows (without the target)")
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    return parser.parse_args(argv)


def image_batch(paths: list[Path], model):
    """(the images the model can take, the paths they came from, [(path, why not)] for the rest):
    each read and resized to the model's input as training reads an image folder (one decoder,
    one resize: nnlab.data.folders.read_image) and scaled to its range. A model that rescales raw
    pixels inside itself (a `to_unit_range` layer, 1 / pixel_max) takes pixel_max for white; one
    without takes MNIST's 0-1."""
    from nnlab.models.layers import pixel_max_of  # Keras, loaded with the model
    from nnlab.tabular import input_of

    _, height, width, channels = input_of(model).shape
    pixel_max = pixel_max_of(model)
    images, kept, refused = [], [], []
    for path in paths:
        try:
            pixels = read_image(path, height, width, channels)
        except InputError as error:
            refused.append((path, str(error)))
            continue
        images.append(pixels / 255.0 * pixel_max)
        kept.append(path)
    return (np.stack(images) if images else None), kept, refused


def read_rows(path: Path):
    """A CSV file as pandas reads it; one that is missing or does not parse is an InputError."""
    import pandas as pd

    try:
        frame = parsed_csv(path)
    except FileNotFoundError:
        raise InputError("does not exist") from None
    except NotText as error:
        raise InputError(str(error)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, IsADirectoryError) as error:
        raise InputError(f"not a CSV table pandas can read ({' '.join(str(error).split())[:160]})") from None
    return frame


def table_rows(path: Path, columns: list[str]):
    """The rows of a CSV, the model's columns only."""
    from nnlab.tabular import input_name

    frame = read_rows(path)
    by_input = {input_name(column): column for column in frame.columns}
    missing = [column for column in columns if column not in by_input]
    if missing:
        raise InputError(f"lacks the model's column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    if frame.empty:
        raise InputError("holds no rows")
    return frame[[by_input[column] for column in columns]]


def number_rows(path: Path, features: int):
    """A CSV's rows as `features` numbers each (a model over arrays: its columns in order)."""
    frame = read_rows(path)
    if frame.shape[1] != features:
        raise InputError(f"has {frame.shape[1]} columns; the model takes rows of {features} numbers")
    if frame.empty:
        raise InputError("holds no rows")
    try:
        return frame.to_numpy(dtype=np.float32)
    except ValueError:
        raise InputError(f"holds text; the model takes rows of {features} numbers") from None


def describe(outputs, class_names: list[str] | None) -> list[str]:
    """One text per prediction: "7 (0.98)", or the value."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and outputs.shape[1] > 1:  # class probabilities
        names = class_names or [str(number) for number in range(outputs.shape[1])]
        return [f"{names[int(row.argmax())]} ({float(row.max()):.4f})" for row in outputs]
    return [f"{float(value):.6g}" for value in outputs.reshape(len(outputs), -1)[:, 0]]


def predict(model, class_names, files: list[Path], echo=print, complain=None) -> int:
    """Print each input's prediction; returns how many files the model could not take."""
    from nnlab.tabular import RowsError, input_of  # Keras, loaded with the model

    complain = complain or (lambda line: print(line, file=sys.stderr))
    refused = 0
    structure = input_of(model)
    if isinstance(structure, dict) or len(structure.shape) == 2:
        # A table: one input per column, or one row of numbers (arrays handed to nnlab.search).
        columns = list(structure) if isinstance(structure, dict) else None
        read = (lambda path: table_rows(path, columns)) if columns else (
            lambda path: number_rows(path, int(structure.shape[1])))
        for path in files:
            try:
                inputs = read(path)
                texts = describe(model.predict(inputs, batch_size=BATCH_SIZE, verbose=0), class_names)
            except (InputError, RowsError) as error:  # RowsError: a value the model cannot read
                complain(f"{PROG}: {path}: {error}")
                refused += 1
                continue
            for row, text in enumerate(texts, start=1):
                echo(f"{path} row {row}: {text}")
        return refused
    if len(structure.shape) != 4:
        raise InputError(f"the model takes inputs of shape {tuple(structure.shape[1:])} (a series' windows), "
                         "not image files or CSV rows")
    images, kept, not_taken = image_batch(files, model)
    for path, reason in not_taken:
        complain(f"{PROG}: {path}: {reason}")
    if images is not None:
        for path, text in zip(kept, describe(model.predict(images, batch_size=BATCH_SIZE, verbose=0), class_names)):
            echo(f"{path}: {text}")
    return len(not_taken)


def main(argv=None) -> int:
    args = parse_args(argv)
    from nnlab.champion import CLASS_NAMES_TAG
    from nnlab.tracking import load_registered_model, registered_version

    try:
        version = registered_version(args.model, args.tracking_uri)
        start_backend(echo=lambda line: print(f"{PROG}: {line}", file=sys.stderr))
        model = load_registered_model(version.uri, args.tracking_uri)
        names = json.loads(version.tags[CLASS_NAMES_TAG]) if CLASS_NAMES_TAG in version.tags else None
        refused = predict(model, names, [Path(file) for file in args.files])
    except (TrackingError, InputError) as error:
        print_error(PROG, error)
        return 2
    return 2 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
