"""The experiment's [space] table: parsed with the config, applied to what the builders declare."""

from __future__ import annotations

import keras
import keras_tuner
import pytest

from nnlab import space
from nnlab.config import load_config
from nnlab.errors import ConfigError
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import get_builder
from nnlab.oracles import DefaultsFirst


def hypermodel(spec, overrides, model="dfn"):
    return SearchHyperModel(get_builder(model), spec, batch_size=64, patience=2, space=overrides)


def test_space_table_is_read_with_the_config(workdir):
    (workdir / "narrow.toml").write_text(
        'model = "dfn"\n[space]\nlearning_rate = [1e-3, 5e-3]\nhidden_layers = 3\nactivation = ["relu", "tanh"]\n'
    )
    config = load_config("narrow.toml")
    assert config.space == {"learning_rate": [1e-3, 5e-3], "hidden_layers": 3, "activation": ["relu", "tanh"]}


@pytest.mark.parametrize(("table", "message"), [
    ("learning_rate = [0.01, 0.001]", "the range's minimum 0.01 exceeds its maximum 0.001"),
    ("activation = []", "must be a value or a non-empty list of values"),
    ("[space.deeper]\nx = 1", "space.deeper = {'x': 1} must be a value or a non-empty list of values"),
])
def test_space_shape_mistakes(workdir, table, message):
    (workdir / "bad.toml").write_text(f"[space]\n{table}\n" if not table.startswith("[") else table + "\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace("{", r"\{")):
        load_config("bad.toml")


def test_narrowed_ranges_fixed_values_and_choices(small_mnist):
    overrides = {"learning_rate": [1e-3, 5e-3], "hidden_layers": 3, "activation": ["tanh", "sigmoid"], "units_0": [64, 96]}
    hp = keras_tuner.HyperParameters()
    model = hypermodel(small_mnist.spec, overrides).build(hp)
    declared = {parameter.name: parameter for parameter in hp.space}
    assert (declared["learning_rate"].min_value, declared["learning_rate"].max_value) == (1e-3, 5e-3)
    assert declared["learning_rate"].sampling == "log"  # the builder's sampling is kept
    assert isinstance(declared["hidden_layers"], keras_tuner.engine.hyperparameters.Fixed)
    assert declared["activation"].values == ["tanh", "sigmoid"] and hp.values["activation"] == "tanh"
    assert (declared["units_0"].min_value, declared["units_0"].max_value, declared["units_0"].step) == (64, 96, 1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 3 + 1  # three fixed hidden layers and the classifier


def test_defaults_first_takes_the_narrowed_defaults(small_mnist):
    # The first trial of a search is the defaults, within the experiment's ranges.
    overrides = {"learning_rate": [4e-3, 8e-3], "dropout": 0.0}
    oracle_class = type("Oracle", (DefaultsFirst, keras_tuner.oracles.RandomSearchOracle), {})
    oracle = oracle_class(objective="val_accuracy", max_trials=2, seed=1)
    hp = keras_tuner.HyperParameters()
    hypermodel(small_mnist.spec, overrides).build(hp)
    oracle.update_space(hp)
    values = oracle._random_values()
    assert values["learning_rate"] == 4e-3 and values["dropout"] == 0.0


def test_check_knows_every_layer_the_builder_can_build(small_mnist):
    build = hypermodel(small_mnist.spec, {}, model="cnn").build
    space.check({"filters_2": [32, 48]}, build, "here")  # only built with three blocks: still known
    with pytest.raises(space.SpaceError, match=r"here: space.filters_3: the model declares no such hyperparameter; "
                                               r"known: activation, augment_shift, batch_norm, batch_size, conv_blocks"):
        space.check({"filters_3": [32, 48]}, build, "here")
    with pytest.raises(space.SpaceError, match="batch_norm takes true or false"):
        space.check({"batch_norm": "yes"}, build, "here")


def test_narrowed_opens_a_fixed_value_into_a_choice_or_a_range():
    hp = keras_tuner.HyperParameters()
    narrowed = space.Narrowed(hp, {"cell": ["gru", "lstm"], "recurrent_dropout": [0.0, 0.3], "depth": [1, 4], "kept": "x"})
    assert narrowed.Fixed("cell", "lstm") == "lstm"  # the builder's value stays the default
    assert narrowed.Fixed("recurrent_dropout", 0.0) == 0.0
    assert narrowed.Fixed("depth", 2) == 2
    assert narrowed.Fixed("kept", "y") == "x" and narrowed.Fixed("untouched", 5) == 5
    declared = {parameter.name: parameter for parameter in hp.space}
    assert declared["cell"].values == ["gru", "lstm"]
    assert type(declared["recurrent_dropout"]).__name__ == "Float"
    assert (declared["recurrent_dropout"].min_value, declared["recurrent_dropout"].max_value) == (0.0, 0.3)
    assert type(declared["depth"]).__name__ == "Int" and (declared["depth"].min_value, declared["depth"].max_value) == (1, 4)
    assert type(declared["kept"]).__name__ == type(declared["untouched"]).__name__ == "Fixed"


def test_recurrent_cell_opened_up_and_checked():
    from nnlab.data import DataSpec

    spec = DataSpec(input_shape=(52, 1), task="regression", kind="sequence", scale=2.0)

    def build(hp):
        return get_builder("lstm")(hp, spec)

    space.check({"cell": ["lstm", "gru"], "recurrent_dropout": [0.0, 0.3]}, build, "here")
    hp = keras_tuner.HyperParameters()
    hp.values["cell"] = "gru"
    model = build(space.Narrowed(hp, {"cell": ["lstm", "gru"]}))
    assert model.name == "gru" and isinstance(model.get_layer("bidirectional_0").forward_layer, keras.layers.GRU)
    with pytest.raises(space.SpaceError, match=r"here: space.cell = \['lstm', 'cnn'\]: cell 'cnn' is not one of rnn, lstm, gru"):
        space.check({"cell": ["lstm", "cnn"]}, build, "here")
    with pytest.raises(space.SpaceError, match="cell takes text"):
        space.check({"cell": 3}, build, "here")
    with pytest.raises(space.SpaceError, match="recurrent_dropout takes numbers"):
        space.check({"recurrent_dropout": "some"}, build, "here")


def test_limits_bound_what_the_space_may_ask_not_what_is_searched(small_mnist):
    build = hypermodel(small_mnist.spec, {}).build
    # Wider than the default ranges, within the legal limits: taken.
    space.check({"hidden_layers": [1, 4], "learning_rate": [1e-4, 1.0], "dropout": [0.0, 0.9], "units_3": [16, 2048],
                 "weight_decay": [0.0, 0.1], "batch_size": [8, 512]}, build, "here")
    parameters, limits = space.declared(build)
    # The searched ranges stay the builder's (a saved search still matches it); the limits are apart.
    assert (parameters["learning_rate"].min_value, parameters["learning_rate"].max_value) == (3e-4, 1e-2)
    assert (parameters["hidden_layers"].min_value, parameters["hidden_layers"].max_value) == (2, 4)
    assert {name: str(limits[name]) for name in ("learning_rate", "dropout", "hidden_layers", "units_0", "weight_decay")} == {
        "learning_rate": "in (0, 1]", "dropout": "in [0, 1)", "hidden_layers": "in [1, 4]", "units_0": "at least 1",
        "weight_decay": "at least 0"}
    with pytest.raises(space.SpaceError, match=r"^here: space.units_3 = \[0, 64\]: units_3 must be at least 1$"):
        space.check({"units_3": [0, 64]}, build, "here")


@pytest.mark.parametrize("model", ["dfn", "cnn", "lstm", "gan"])
def test_every_number_a_builder_declares_has_limits(small_mnist, model):
    # A new knob declares its limits where it declares itself (space.within), or the check cannot bound it.
    if model == "gan":  # the builder alone: its policy's learning rates are nnlab/models/gan.py's
        def build(hp):
            return get_builder("gan")(hp, small_mnist.spec)
    else:
        build = hypermodel(small_mnist.spec, {}, model=model).build
    parameters, limits = space.declared(build)
    numbers = {name for name, parameter in parameters.items() if type(parameter).__name__ in ("Int", "Float")
               or (type(parameter).__name__ == "Fixed" and space._is_number(parameter.value))}
    assert numbers and numbers <= set(limits), numbers - set(limits)
