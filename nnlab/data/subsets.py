"""What any classification data set takes in an experiment's [data] table, whatever its loader:

- `classes = [0, 1, 2, 3, 4]`: those classes only, in every split, relabelled 0..K-1 in the
  order given (the model's K outputs are the listed classes), so that a source searched on some
  digits and a target of others are two experiments over one data set.
- `labels_per_class = K`: K labelled training examples per class, balanced and seeded, to study
  few-label learning; validation and test stay whole, so scores stay comparable.
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral

import numpy as np

from nnlab.data.types import Dataset
from nnlab.errors import DataError

# Their defaults: absent, all classes and all labels.
CLASSIFICATION_OPTIONS = {"classes": None, "labels_per_class": None}


def _whole(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_option(key: str, value) -> str | None:
    """Why a [data] value cannot be taken (the text after "data.<key> = <value> "), or None.
    Every built-in option but `classes` is a positive whole number."""
    if key == "classes":
        if (not isinstance(value, list) or len(value) < 2 or not all(_whole(item) and item >= 0 for item in value)
                or len(set(value)) != len(value)):
            return "must be a list of at least two distinct class numbers (0, 1, ...)"
        return None
    if not _whole(value) or value < 1:
        return "must be a positive whole number"
    return None


def select(dataset: Dataset, classes: list[int] | None = None, labels_per_class: int | None = None,
           seed: int = 0) -> Dataset:
    """`dataset` restricted to `classes` (relabelled by their position in the list) and to
    `labels_per_class` training examples per class."""
    spec, source, train = dataset.spec, dataset.source, dataset.train
    if spec.task != "classification":
        raise DataError(f"{dataset.name} is a {spec.task} data set: classes and labels_per_class apply to classification")
    splits = {"train": train, "validation": dataset.validation, "test": dataset.test}
    if classes is not None:
        unknown = [number for number in classes if number >= spec.num_classes]
        if unknown:
            raise DataError(f"data.classes: {dataset.name} has classes 0 to {spec.num_classes - 1}, not "
                            f"{', '.join(map(str, unknown))}")
        lookup = np.full(spec.num_classes, -1, dtype=np.int64)
        lookup[classes] = np.arange(len(classes))
        for name, (inputs, labels) in splits.items():
            kept = lookup[labels] >= 0
            splits[name] = (inputs[kept], lookup[labels[kept]])
        names = tuple(spec.class_names[number] for number in classes) if spec.class_names else None
        spec = replace(spec, num_classes=len(classes), class_names=names)
        source += f"; classes {', '.join(map(str, classes))} only, as labels 0-{len(classes) - 1}"
    if labels_per_class is not None:
        inputs, labels = splits["train"]
        counts = np.bincount(labels, minlength=spec.num_classes)
        smallest = int(counts.argmin())
        if labels_per_class > counts[smallest]:
            raise DataError(f"data.labels_per_class = {labels_per_class} is more than the {counts[smallest]} training "
                            f"examples of the smallest class (label {smallest}) in {dataset.name}")
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:labels_per_class]
                                 for label in range(spec.num_classes)])
        chosen = rng.permutation(chosen)  # classes interleaved, as a shuffled split would be
        splits["train"] = (inputs[chosen], labels[chosen])
        source += f"; {labels_per_class} training labels per class"
    return replace(dataset, train=splits["train"], validation=splits["validation"], test=splits["test"],
                   spec=spec, source=source)
