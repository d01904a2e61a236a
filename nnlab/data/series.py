"""co2: the weekly Mauna Loa CO2 series, shipped with nnlab (co2.csv beside this file), as
forecasting windows.

A sample is `window` consecutive weeks as input and, as target, the week `horizon` steps after
the window's last one. The series is split in time order, never shuffled, and every window lies
wholly inside its part, target included: a model is never scored on weeks it trained on.

The series: Keeling, C.D. and T.P. Whorf (2004), atmospheric CO2 concentrations (ppmv) from
flask air samples at Mauna Loa, SIO network; Carbon Dioxide Information Analysis Center, Oak
Ridge National Laboratory (http://cdiac.ornl.gov/trends/co2/sio-keel-flask/sio-keel-flaskmlo_c.html).
Public domain. co2.csv is a byte-for-byte copy of the file statsmodels ships
(statsmodels.datasets.co2, obtained 2014-03-15): 2,284 Saturdays from 1958-03-29 to
2001-12-29, 59 of them missing. nnlab copies it so that one 34 KB series does not install
statsmodels (about 65 MB with patsy).

pandas is imported inside functions, when the series loads: a config check needs none.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral
from pathlib import Path

import numpy as np

from nnlab.data.types import DataSpec, Dataset
from nnlab.errors import DataError

TRAIN_FRACTION = 0.70  # the first 70% of the weeks; the next 15% validate, the last 15% test
VALIDATION_FRACTION = 0.15
SERIES_FILE = Path(__file__).with_name("co2.csv")
SEASON = 52  # weeks in a year: the seasonal naive forecast's lag
PART_NAMES = ("training", "validation", "test")
SPLIT = "/".join(  # "70/15/15", for messages
    str(round(100 * share)) for share in (TRAIN_FRACTION, VALIDATION_FRACTION, 1 - TRAIN_FRACTION - VALIDATION_FRACTION)
)


@functools.lru_cache(maxsize=1)
def _co2_series() -> tuple[np.ndarray, np.ndarray, int]:
    """(ppm, dates as datetime64[D], gaps filled): the series with its gaps interpolated."""
    import pandas  # slow-ish to import, hence here; the parse is cached

    frame = pandas.read_csv(SERIES_FILE, dtype={"date": str})
    frame.index = pandas.to_datetime(frame.pop("date"), format="%Y%m%d")
    gaps = int(frame["co2"].isna().sum())
    # Weekly and regular, so "time" and "linear" agree; "time" says what is meant.
    filled = frame["co2"].interpolate(method="time")
    if filled.isna().any():  # a gap at either end has no neighbour on one side
        raise DataError(f"co2: {int(filled.isna().sum())} missing values at the ends of the series cannot be interpolated")
    values = filled.to_numpy(dtype=np.float64)
    dates = frame.index.to_numpy().astype("datetime64[D]")
    values.flags.writeable = dates.flags.writeable = False
    return values, dates, gaps


def part_bounds(length: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(start, stop) of the training, validation and test parts of a series of `length` values."""
    train_stop = int(length * TRAIN_FRACTION)
    validation_stop = train_stop + int(length * VALIDATION_FRACTION)
    return (0, train_stop), (train_stop, validation_stop), (validation_stop, length)


def split_series(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training, validation and test parts, in time order."""
    return tuple(values[start:stop] for start, stop in part_bounds(len(values)))


def windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (N, window, 1), targets (N, 1), target_index (N,)) of every window inside `values`:
    N = len(values) - window - horizon + 1; target_index counts from the start of `values`."""
    count = len(values) - window - horizon + 1
    if count < 1:
        raise DataError(f"a part of {len(values)} values has no window of {window} + horizon {horizon}")
    inputs = np.lib.stride_tricks.sliding_window_view(values, window)[:count]
    target_index = np.arange(count) + window + horizon - 1
    return inputs[..., np.newaxis].copy(), values[target_index, np.newaxis].copy(), target_index


def seasonal_index(target_index: np.ndarray, horizon: int, season: int = SEASON) -> np.ndarray:
    """Where the seasonal naive forecast reads: the same week whole seasons before the target,
    the fewest seasons that reach back to the window's last week or earlier (seen data only)."""
    return target_index - season * math.ceil(horizon / season)


def relative_scale(inputs: np.ndarray, targets: np.ndarray) -> float:
    """The standard deviation of every window value and target minus the window's last value:
    the unit models/layers.py reads a window in. Learnt from the training windows only."""
    last = inputs[:, -1, :]
    changes = np.concatenate([inputs[..., 0] - last, targets - last], axis=1)
    return float(f"{float(np.std(changes)):.4g}")


def _positive_whole(name: str, value) -> int:
    # The config checks these too, but a loader called from Python must not trust its caller.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise DataError(f"co2: {name} = {value!r} must be a positive whole number of weeks")
    return int(value)


def load_co2(
    data_dir=None,
    seed: int = 0,
    validation_fraction: float | None = None,
    window: int = 52,
    horizon: int = 1,
) -> Dataset:
    """The co2 windows, float32 ppm: inputs (N, window, 1), targets (N, 1).

    Takes the keywords every loader takes, but the series is built in (`data_dir` is refused),
    nothing is random (`seed` is ignored) and the parts are fixed at 70/15/15 in time order
    (`validation_fraction` is MNIST's and is ignored here).
    """
    if data_dir is not None:
        raise DataError("co2 is built in (shipped with nnlab); it takes no --data-dir")
    window, horizon = _positive_whole("window", window), _positive_whole("horizon", horizon)
    values, dates, gaps = _co2_series()
    bounds = part_bounds(len(values))
    lengths = [stop - start for start, stop in bounds]
    shortest = min(range(3), key=lambda part: lengths[part])
    if lengths[shortest] < window + horizon:
        raise DataError(
            f"co2: window {window} + horizon {horizon} needs {window + horizon} weeks, but the "
            f"{PART_NAMES[shortest]} part has {lengths[shortest]} ({SPLIT} of {len(values):,} weeks in time order)"
        )
    parts = [windows(part, window, horizon) for part in split_series(values)]
    (train_inputs, train_targets, _), validation, (test_inputs, test_targets, test_index) = parts
    test_start = bounds[2][0]
    # Both naive forecasts read only weeks at or before the window's last one.
    baselines = {
        "naive_last": test_inputs[:, -1, :],
        "naive_seasonal": values[seasonal_index(test_start + test_index, horizon), np.newaxis],
    }
    years = f"{dates[0].astype(object).year}-{dates[-1].astype(object).year}"
    return Dataset(
        name="co2",
        train=(train_inputs.astype(np.float32), train_targets.astype(np.float32)),
        validation=(validation[0].astype(np.float32), validation[1].astype(np.float32)),
        test=(test_inputs.astype(np.float32), test_targets.astype(np.float32)),
        spec=DataSpec(
            input_shape=(window, 1),
            num_classes=0,
            task="regression",
            kind="sequence",
            scale=relative_scale(train_inputs, train_targets),
        ),
        source=(
            f"nnlab's co2.csv (weekly Mauna Loa CO2 {years}, {len(values):,} weeks, "
            f"{gaps} gaps interpolated); {SPLIT} in time order, window {window}, horizon {horizon}"
        ),
        baselines={name: forecast.astype(np.float32) for name, forecast in baselines.items()},
        test_times=dates[test_start + test_index],
    )
