"""The family door (issue 27): a family defined here, a builder and its row, searched end to end
without editing nnlab."""

from __future__ import annotations

import keras
import pytest

from nnlab.config import ExperimentConfig
from nnlab.models import FAMILIES, Family, family_names, register
from nnlab.search import run_search


def build_wide(hp, spec):
    """One hidden layer of searched width over the flattened image: the smallest family there is."""
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hp.Int("width", 16, 64, step=16, default=32), activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x), name="wide")


@pytest.fixture
def wide_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, "wide", Family("wide", ("image",), build_wide, training_defaults={"ensemble": 0}))
    return FAMILIES["wide"]


def test_a_family_defined_outside_nnlab_is_searched_tracked_and_registered(wide_family, small_mnist, tmp_path):
    from mlflow import MlflowClient

    assert "wide" in family_names(searchable_only=True)
    tracking_uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    config = ExperimentConfig(name="mnist", model="wide", tuner="random", max_trials=2, epochs=1, final_epochs=0,
                              tracking_uri=tracking_uri)
    assert config.ensemble == 0  # the row's own training default
    result = run_search(config, small_mnist, tuning_root=tmp_path / "tuning", echo=lambda _line: None)
    assert result.registered_name == "mnist-wide" and result.trials_run == 2
    assert result.leaderboard["width"].notna().all()  # its hyperparameter, tracked on every trial
    client = MlflowClient(tracking_uri)
    assert str(client.get_model_version_by_alias("mnist-wide", "champion").version) == result.champion_version


def test_a_registered_family_is_checked_like_a_built_in_one(wide_family):
    from nnlab.config import validate
    from nnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot take co2's sequence data; families that can: dfn"):
        validate(ExperimentConfig(name="co2", dataset="co2", model="wide"))
    replaced = register(Family("wide", ("image", "sequence"), build_wide))
    assert FAMILIES["wide"] is replaced
    validate(ExperimentConfig(name="co2", dataset="co2", model="wide"))
