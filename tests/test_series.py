from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from nnlab.data import DATASETS, load_dataset
from nnlab.data.series import part_bounds, seasonal_index, split_series, windows
from nnlab.errors import DataError

WEEKS = 2284  # the weekly co2 nnlab ships, 1958-03-29 .. 2001-12-29
CO2_SHA256 = "16695fa2786e53414e5a6b54767a3fdf5de99cfbc68617f69d1362d92776a92f"


@pytest.mark.parametrize("window, horizon", [(52, 1), (52, 13), (1, 1), (10, 60), (300, 42)])
def test_every_window_lies_inside_its_part(window, horizon):
    # Values that are their own index: each sample says which weeks it read.
    series = np.arange(WEEKS, dtype=np.float64)
    parts = split_series(series)
    bounds = part_bounds(WEEKS)
    assert [len(part) for part in parts] == [stop - start for start, stop in bounds]
    assert bounds[0][0] == 0 and bounds[0][1] == bounds[1][0] and bounds[1][1] == bounds[2][0] and bounds[2][1] == WEEKS
    for part, (start, stop) in zip(parts, bounds):
        np.testing.assert_array_equal(part, np.arange(start, stop))  # in time order, no overlap
        inputs, targets, target_index = windows(part, window, horizon)
        assert inputs.shape == (len(part) - window - horizon + 1, window, 1)
        assert targets.shape == (len(inputs), 1) and target_index.shape == (len(inputs),)
        assert start <= inputs.min() and inputs.max() < stop
        assert start <= targets.min() and targets.max() < stop
        np.testing.assert_array_equal(np.diff(inputs[..., 0], axis=1), 1)  # consecutive weeks
        np.testing.assert_array_equal(targets[:, 0], inputs[:, -1, 0] + horizon)
        np.testing.assert_array_equal(part[target_index], targets[:, 0])
        # The seasonal naive forecast reads a week the forecaster has seen: the window's last or earlier.
        assert (seasonal_index(target_index, horizon) <= target_index - horizon).all()


def test_a_part_too_short_for_one_window():
    with pytest.raises(DataError):
        windows(np.arange(10.0), 8, 3)
    assert len(windows(np.arange(10.0), 8, 2)[0]) == 1


def test_co2_windows():
    dataset = load_dataset("co2")
    assert dataset.name == "co2"
    parts = (dataset.train, dataset.validation, dataset.test)
    for inputs, targets in parts:
        assert inputs.dtype == targets.dtype == np.float32
        assert inputs.shape[1:] == (52, 1) and targets.shape == (len(inputs), 1)
        assert not np.isnan(inputs).any() and not np.isnan(targets).any()
        assert 300 < inputs.min() and inputs.max() < 400  # ppm
    # Each part of length L gives L - 52 - 1 + 1 windows; the parts add up to every week.
    assert sum(len(inputs) + 52 for inputs, _ in parts) == WEEKS
    assert "2,284 weeks" in dataset.source and "59 gaps interpolated" in dataset.source
    spec = dataset.spec
    assert (spec.input_shape, spec.num_classes, spec.task, spec.kind) == ((52, 1), 0, "regression", "sequence")
    assert spec.scale > 0
    # Time order: training weeks before validation weeks before test weeks.
    assert dataset.train[1][-1, 0] < dataset.test[1][-1, 0]
    times = dataset.test_times
    assert times.dtype == np.dtype("datetime64[D]") and len(times) == len(dataset.test[1])
    assert (np.diff(times) == np.timedelta64(7, "D")).all()
    assert str(times[-1]) == "2001-12-29"
    assert set(dataset.baselines) == {"naive_last", "naive_seasonal"}
    for forecast in dataset.baselines.values():
        assert forecast.shape == dataset.test[1].shape and forecast.dtype == np.float32
    np.testing.assert_array_equal(dataset.baselines["naive_last"], dataset.test[0][:, -1, :])
    # DESIGN.md: 0.50 ppm for the last value, 1.89 for the same week a year earlier.
    rmse = {name: float(np.sqrt(np.mean((forecast - dataset.test[1]) ** 2))) for name, forecast in dataset.baselines.items()}
    assert 0.45 < rmse["naive_last"] < 0.55
    assert 1.8 < rmse["naive_seasonal"] < 2.0
    # The window's first week is the target's week a year earlier at horizon 1.
    np.testing.assert_array_equal(dataset.baselines["naive_seasonal"], dataset.test[0][:, 0, :])


def test_co2_horizon_moves_the_target():
    near, far = load_dataset("co2"), load_dataset("co2", {"horizon": 13})
    assert len(far.test[1]) == len(near.test[1]) - 12
    # The same final target week; its window ends 13 weeks before it instead of 1.
    assert far.test_times[-1] == near.test_times[-1]
    np.testing.assert_array_equal(far.test[0][-1], near.test[0][-13])
    assert "horizon 13" in far.source
    rmse = float(np.sqrt(np.mean((far.baselines["naive_last"] - far.test[1]) ** 2)))
    assert 3.0 < rmse < 3.4  # DESIGN.md: 3.21


def test_co2_registry_entry():
    source = DATASETS["co2"]
    assert (source.kind, source.default_model, source.options) == ("sequence", "lstm", {"window": 52, "horizon": 1})
    assert load_dataset("co2").spec.kind == source.kind  # what the config checks is what the model gets
    assert DATASETS["mnist"].options == {"classes": None, "labels_per_class": None}  # any classifier's, absent by default
    assert DATASETS["mnist"].default_model == "cnn"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"horizon": 400}, "co2: window 52 + horizon 400 needs 452 weeks, but the validation part has 342 (70/15/15 of 2,284 weeks in time order)"),
        ({"window": 0}, "window = 0 must be a positive whole number"),
        ({"horizon": -1}, "horizon = -1 must be a positive whole number"),
        ({"window": 52.0}, "window = 52.0 must be a positive whole number"),
        ({"window": True}, "window = True must be a positive whole number"),
    ],
)
def test_co2_options_that_cannot_work(options, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset("co2", options)


def test_co2_takes_no_data_dir(tmp_path):
    with pytest.raises(DataError, match="co2 is built in .* no --data-dir"):
        load_dataset("co2", data_dir=tmp_path, seed=3, validation_fraction=0.2)
    # seed and validation_fraction are accepted and change nothing: nothing is random.
    plain, other = load_dataset("co2"), load_dataset("co2", seed=3, validation_fraction=0.2)
    np.testing.assert_array_equal(plain.validation[0], other.validation[0])


def test_the_shipped_series_is_the_statsmodels_copy():
    # Issue 31: nnlab/data/co2.csv replaced statsmodels.datasets.co2, byte for byte (this digest
    # is that file's in statsmodels 0.15); the loader reads the dates as its index did (W-SAT).
    from nnlab.data.series import SERIES_FILE, _co2_series

    assert hashlib.sha256(SERIES_FILE.read_bytes()).hexdigest() == CO2_SHA256
    values, dates, gaps = _co2_series()
    assert (len(values), gaps, str(dates[0]), str(dates[-1])) == (WEEKS, 59, "1958-03-29", "2001-12-29")
    assert (np.diff(dates) == np.timedelta64(7, "D")).all()
    assert (values[0], values[-1]) == (316.1, 371.5)
