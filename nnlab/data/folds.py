"""K-fold cross-validation over a search's training and validation rows (issue 32): each trial is
scored as the mean of K fits, each validated on one fold and trained on the others.

A classification's folds are stratified by class, a table's regression is shuffled, a series is
cut in time order (each fold validates on the weeks after those it trained on, never before).
Where the data is small a single validation split of a few dozen rows scores in coarse steps
(15 rows: steps of 0.067) and picks the champion by chance among ties; K folds score every
labelled row once.

scikit-learn (installed with nnlab) makes the folds; it and pandas are imported inside functions, when
folds are made: a config check loads neither.
"""

from __future__ import annotations

import numpy as np

from nnlab.data.types import row_count
from nnlab.errors import DataError
from nnlab.formats import counted

# A table search cross-validates by default below this many training and validation rows: the
# scikit-learn tables (142 to 455 rows), where a validation split of 15 to 46 rows scores trials
# in coarse steps. Images and series do not by default (the offline MNIST's 4,500 rows, a
# series' windows): K fits cost K times the search. `cross_validation = K` asks for it anywhere.
SMALL_TABLE_ROWS = 2000
DEFAULT_FOLDS = 5


def folds_for(setting: int | None, rows: int, kind: str) -> int:
    """The folds a search of `rows` training and validation rows of `kind` data makes: `setting`
    where the experiment gives it (0 or 1: none), else DEFAULT_FOLDS for a table below
    SMALL_TABLE_ROWS, else 0."""
    if setting is not None:
        return setting if setting >= 2 else 0
    return DEFAULT_FOLDS if kind == "table" and rows < SMALL_TABLE_ROWS else 0


def take(inputs, index: np.ndarray):
    """The rows `index` of `inputs`: an array's, or a table's DataFrame's (renumbered from 0)."""
    if hasattr(inputs, "iloc"):
        return inputs.iloc[index].reset_index(drop=True)
    return inputs[index]


def joined(train: tuple, validation: tuple) -> tuple:
    """(inputs, targets) of the training rows followed by the validation rows."""
    (train_inputs, train_targets), (validation_inputs, validation_targets) = train, validation
    if hasattr(train_inputs, "iloc"):
        import pandas as pd

        inputs = pd.concat([train_inputs, validation_inputs], ignore_index=True)
    else:
        inputs = np.concatenate([train_inputs, validation_inputs])
    return inputs, np.concatenate([train_targets, validation_targets])


def fold_indices(targets: np.ndarray, folds: int, task: str, kind: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, validation rows) of each of `folds` folds of rows whose targets are
    `targets`: stratified for a classification, shuffled for a table's regression, in time order
    for a series (TimeSeriesSplit: fold k trains on the rows before its validation block). Rows
    too few for the folds (or a class with fewer rows than folds) are a DataError."""
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    rows = len(targets)
    if kind == "sequence":
        splitter = TimeSeriesSplit(n_splits=folds)
        if rows < 2 * (folds + 1):
            raise DataError(f"{rows} windows are too few for {folds} time-ordered folds")
        return list(splitter.split(np.arange(rows)))
    if task == "classification":
        counts = np.bincount(np.asarray(targets, dtype=np.int64).ravel())
        smallest = int(counts[counts > 0].min())
        if smallest < folds:
            raise DataError(f"the smallest class has {counted(smallest, 'training and validation row')}"
                            f": too few for {folds} folds (set cross_validation "
                            f"to {smallest} or less, or 0 for one validation split)")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(rows), np.asarray(targets).ravel()))
    if rows < folds:
        raise DataError(f"{rows} rows are too few for {folds} folds")
    return list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(rows)))


def search_folds(setting: int | None, train: tuple, validation: tuple, spec, seed: int) -> int:
    """The folds a search makes of its training and validation rows (folds_for), checked against
    them: rows or classes too few for the folds are a DataError, said before the search starts."""
    folds = folds_for(setting, (row_count(train[0]) or 0) + (row_count(validation[0]) or 0), spec.kind)
    if folds:
        fold_indices(np.concatenate([train[1], validation[1]]), folds, spec.task, spec.kind, seed)
    return folds
