"""A user's own model builder (issue 29): named in an experiment file ("my_models.py:build"), handed
over from Python as a function or a KerasTuner HyperModel. It searches, registers and resumes like
a built-in family, a changed builder is not resumed, and a builder's mistake is one line before
anything is tracked. Real searches on scikit-learn's 8x8 digits, real MLflow stores in tmp_path."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow import MlflowClient

import nnlab
from nnlab.search import main
from test_search import runs_of

BUILDER = '''import keras


def build(hp, spec):
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Rescaling(1 / spec.pixel_max)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
'''
EXPERIMENT = '''dataset = "digits"
model = "models/my_models.py:build"
tuner = "random"
max_trials = 2
epochs = 2
final_epochs = 2
ensemble = 2
'''


def test_a_builder_named_in_the_experiment_file_searches_registers_resumes_and_refuses_changed_code(
        workdir, tracking_uri, capsys):
    (workdir / "experiments").mkdir()
    (workdir / "experiments" / "models").mkdir()
    builder = workdir / "experiments" / "models" / "my_models.py"  # beside the file, as the file names it
    builder.write_text(BUILDER)
    (workdir / "experiments" / "my.toml").write_text(EXPERIMENT)
    command = [sys.executable, "-m", "nnlab.search", "my", "--tracking-uri", tracking_uri]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Starting search my-build (random, 2 trials" in first.stdout
    assert "Registered my-build version 1; alias champion now points to it." in first.stdout
    parents, children = runs_of(tracking_uri, "my")
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.tags["nnlab.builder"] == "models/my_models.py:build"
    assert parents[0].data.params["builder"] == "models/my_models.py:build"
    assert {child.data.params["units"] for child in children} <= {"16", "32", "48", "64"}  # its own space
    assert str(MlflowClient(tracking_uri).get_model_version_by_alias("my-build", "champion").version) == "1"

    # The same search, resumed from Python.
    resumed = nnlab.search("my", max_trials=3, tracking_uri=tracking_uri)
    assert "Resuming search my-build (random, 3 trials" in capsys.readouterr().out
    assert resumed.trials_run == 1 and len(runs_of(tracking_uri, "my")[1]) == 3  # the finished two not run again

    builder.write_text(BUILDER.replace('activation="relu"', 'activation="tanh"'))
    assert main(["my", "--tracking-uri", tracking_uri]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("nnlab.search: error: tuning/my-build holds a search with other settings (the code of "
                            "model build (models/my_models.py:build) has changed") and "\n" not in error
    assert len(runs_of(tracking_uri, "my")[1]) == 3  # nothing run, nothing lost


def dense(spec, units: int = 16):
    import keras

    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / spec.pixel_max)(inputs))
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))


def test_a_keras_tuner_hypermodel_and_a_build_of_hp_alone_search_like_a_family(workdir, tracking_uri):
    import keras_tuner

    class Digits(keras_tuner.HyperModel):
        def build(self, hp):  # KerasTuner's own contract: the shape is the user's to know
            from nnlab.data.types import DataSpec

            return dense(DataSpec(input_shape=(8, 8, 1), num_classes=10, pixel_max=16.0), hp.Int("width", 8, 32, step=8))

    def small(hp):
        from nnlab.data.types import DataSpec

        return dense(DataSpec(input_shape=(8, 8, 1), num_classes=10, pixel_max=16.0), hp.Choice("width", [8, 16]))

    settings = dict(tuner="random", max_trials=1, epochs=1, final_epochs=0, ensemble=0, tracking_uri=tracking_uri,
                    verbose=False)
    for model, name in ((Digits(), "digits-Digits"), (small, "digits-small")):
        result = nnlab.search("digits", model=model, **settings)
        assert result.registered_name == name and result.champion_version == "1"
        assert "width" in result.leaderboard.columns and result.test_metrics["test_accuracy"] > 0.1
        assert result.champion.input_shape == (None, 8, 8, 1)


def compiled_sequential(hp):
    """KerasTuner's tutorials' form: a Sequential model the builder compiles itself, with its own
    optimizer at its own searched rate."""
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten(),
                              keras.layers.Dense(hp.Int("units", 16, 32, step=16), activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(hp.Choice("learning_rate", [0.05, 0.1]), momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_build_of_hp_that_compiles_its_sequential_model_trains_as_it_compiled(workdir, tracking_uri):
    """nnlab compiled such a model again with its own Adam (at the builder's rate: 0.1), Keras warned
    on each restore that the saved optimizer did not match the builder's, and `result.champion`
    raised AttributeError: Keras 3 gives a loaded Sequential model no `input`."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = nnlab.search("digits", model=compiled_sequential, tuner="random", max_trials=2, epochs=2,
                              ensemble=0, tracking_uri=tracking_uri, verbose=False)
    assert not [warning for warning in caught if "Skipping variable loading" in str(warning.message)]
    assert set(result.leaderboard["learning_rate"]) <= {0.05, 0.1} and "optimizer" not in result.leaderboard.columns
    champion = result.champion  # loaded back from the registry
    assert type(champion).__name__ == "Sequential" and type(champion.optimizer).__name__ == "SGD"
    assert result.test_metrics["test_accuracy"] > 0.8


def test_a_keras_model_itself_is_searched_as_fresh_copies_and_a_space_with_nothing_left_says_so(
        workdir, tracking_uri, capsys):
    """A Keras user's model object, handed over itself, was "cannot build a model with its space's
    first values: ValueError: Only input tensors may be passed as positional arguments". Each trial
    now trains a fresh copy (new initial weights), compiled as the user compiled it: nothing is
    left to search, and the search said nothing of why it ran 1 of its 3 trials."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")],
                             name="mine")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    weights = [weight.copy() for weight in model.get_weights()]
    result = nnlab.search("digits", model=model, tuner="random", max_trials=3, epochs=2, ensemble=0,
                          tracking_uri=tracking_uri)
    assert result.registered_name == "digits-mine" and len(result.leaderboard) == 1
    assert "No further trials: the search space has no combination of values left untried after 1 trial." in (
        capsys.readouterr().out)
    champion = result.champion
    assert type(champion.optimizer).__name__ == "SGD" and result.test_metrics["test_accuracy"] > 0.5  # of 10 classes
    assert all(np.array_equal(before, after) for before, after in zip(weights, model.get_weights()))  # untouched
    assert not np.array_equal(champion.layers[-2].get_weights()[0], weights[0])


class OwnFit:
    """KerasTuner's tutorial form of a HyperModel that tunes its training: its own compile (with a
    metric of its own besides accuracy) and its own fit choosing the batch size."""

    def __new__(cls, spec, calls: list, returns_history: bool = True):
        import keras
        import keras_tuner

        from nnlab.models.layers import model_input

        class Tuned(keras_tuner.HyperModel):
            def build(self, hp):
                inputs, x = model_input(spec)
                x = keras.layers.Dense(hp.Int("units", 16, 32, step=16), activation="relu")(keras.layers.Flatten()(x))
                model = keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                              metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
                return model

            def fit(self, hp, model, *args, **kwargs):
                batch_size = hp.Choice("batch_size", [16, 64])
                calls.append((batch_size, sorted(kwargs), type(args[0]).__name__))
                history = model.fit(*args, batch_size=batch_size, **kwargs)
                return history if returns_history else {"val_accuracy": 0.5}

        return Tuned()


def test_a_hypermodels_own_fit_trains_its_models_with_its_own_metrics_beside_the_tasks(workdir, tracking_uri):
    """nnlab's fit policy trained a HyperModel's models with model.fit, its own fit() never called
    (its batch size never searched), and a builder's compiled metrics other than the task's were
    dropped."""
    from sklearn.datasets import load_iris

    from nnlab.data import load_dataset
    from nnlab.data.memory import memory_dataset

    calls = []
    settings = dict(tuner="random", epochs=1, ensemble=0, tracking_uri=tracking_uri, verbose=False)
    result = nnlab.search("digits", model=OwnFit(load_dataset("digits").spec, calls), max_trials=2, final_epochs=1,
                          **settings)
    assert len(calls) == 3  # two trials, then the champion's further epochs
    assert all("batch_size" not in keys and "callbacks" in keys and "validation_data" in keys for _, keys, _ in calls)
    assert sorted(result.leaderboard["batch_size"]) == sorted(size for size, _, _ in calls[:2])  # logged on each
    assert "test_top2" in result.test_metrics and result.test_metrics["test_top2"] >= result.test_metrics["test_accuracy"]
    assert all("val_top2" in child.data.metrics for child in runs_of(tracking_uri, "digits")[1])

    # A table's rows reach it as the columns a model of a table takes (one array per column).
    frame = load_iris(as_frame=True).frame
    calls.clear()
    table = memory_dataset(frame, target="target").spec
    nnlab.search("iris", data=frame, target="target", model=OwnFit(table, calls), max_trials=1, cross_validation=0,
                 final_epochs=0, **settings)
    assert calls and calls[0][2] == "dict"

    with pytest.raises(nnlab.NnlabError, match="no trial of digits-Tuned finished"):
        nnlab.search("digits", model=OwnFit(load_dataset("digits").spec, [], returns_history=False), max_trials=1,
                     fresh=True, **settings)
    failed = [child for child in runs_of(tracking_uri, "digits")[1] if child.info.status == "FAILED"]
    assert failed[0].data.tags["nnlab.failure"] == ("TypeError: its fit() returned dict, not what model.fit() returns "
                                                    "(a History): nnlab reads each epoch's scores from it")


def test_a_hyperparameter_a_hypermodels_own_fit_declares_is_narrowed_and_checked_in_space(workdir, tracking_uri):
    """`space={"batch_size": 64}` for a HyperModel whose fit declares it (KerasTuner's tutorial way
    to search the batch size) was refused: "the model declares no such hyperparameter", as the
    check built the model but never ran its fit. Now the check runs that fit on two rows, with
    model.fit doing nothing: the entry narrows every trial's fit, and a misspelt one is still
    refused, naming the fit's hyperparameters among those known."""
    from nnlab.data import load_dataset

    calls = []
    spec = load_dataset("digits").spec
    result = nnlab.search("digits", model=OwnFit(spec, calls), space={"batch_size": 64}, tuner="random", max_trials=2,
                          epochs=1, final_epochs=0, ensemble=0, tracking_uri=tracking_uri, verbose=False)
    assert [size for size, _, _ in calls] == [16, 64, 64]  # the check's dry run (its first value), then each trial
    assert set(result.leaderboard["batch_size"]) == {64}
    with pytest.raises(nnlab.NnlabError, match=r"space\.batch_sise: the model declares no such hyperparameter; "
                                               r"known: batch_size, units"):
        nnlab.search("digits", model=OwnFit(spec, []), space={"batch_sise": 64}, max_trials=1, epochs=1,
                     tracking_uri=tracking_uri, verbose=False)


def with_units(hp, spec):
    return dense(spec, hp.Int("units", 16, 64, step=16))


def test_a_builders_space_is_narrowed_and_checked_as_a_familys(workdir, tracking_uri):
    settings = dict(model=with_units, tuner="random", max_trials=1, epochs=1, final_epochs=0, ensemble=0,
                    tracking_uri=tracking_uri, verbose=False)
    result = nnlab.search("digits", space={"units": 48}, **settings)
    assert result.leaderboard["units"].tolist() == [48]
    with pytest.raises(nnlab.NnlabError, match=r"space\.wings: the model declares no such hyperparameter; known: "
                                               r"batch_size, learning_rate, .*units"):
        nnlab.search("digits", space={"wings": 2}, fresh=True, **settings)
    assert not (workdir / "tuning" / "digits-with_units" / "trial_1").exists()  # the refusal ran nothing


def raises(hp, spec):
    raise ValueError("no good")


def returns_a_list(hp, spec):
    return [dense(spec)]


def cnn(hp, spec):
    return dense(spec)


def five_features(hp, spec):
    import keras

    inputs = keras.Input((5,))
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(inputs))


@pytest.mark.parametrize("model, message", [
    (raises, "model raises (test_builders) cannot build a model with its space's first values: ValueError: no good"),
    (returns_a_list, "model returns_a_list (test_builders) returned list, not a Keras model"),
    (lambda hp, spec: None, "model: a lambda has no name to register its champion under; define the builder with def"),
    (cnn, "model=cnn: cnn is the name of a built-in family; give the builder another name"),
    (42, "model: 42 is neither a family's name, a build(hp, spec) function, a KerasTuner HyperModel, a Keras model "
         "nor a reference"),
    # Each trial failed, said as Keras' last line of the error: "FAILED: ValueError: • kwargs=<class 'inspect._empty'>".
    (five_features, "model five_features (test_builders) builds a model that cannot take the data: ValueError: "
                    "Input 0 with name 'input_layer"),
    ("nothere.py:build", "model 'nothere.py:build': no file nothere.py"),
    ("mine.py:build", "model mine.py:build: mine.py defines no build"),
    ("broken.py:build", "model broken.py:build: cannot import it: ZeroDivisionError: division by zero"),
    ("no.such.module:build", "model 'no.such.module:build': no module no.such.module on the Python path"),
    ("mine.py", "model='mine.py': unknown model"),
], ids=["raises", "not-a-model", "lambda", "built-in-name", "not-a-builder", "wrong-input", "no-file", "no-attribute",
        "import-fails", "no-module", "no-colon"])
def test_a_builders_mistake_is_one_line_before_anything_is_tracked(workdir, tracking_uri, model, message):
    (workdir / "mine.py").write_text("def other(hp, spec):\n    return None\n")
    (workdir / "broken.py").write_text("1 / 0\n")
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.search("digits", model=model, max_trials=1, epochs=1, tracking_uri=tracking_uri, verbose=False)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (workdir / "tuning").exists() and not (workdir / "store").exists()


def test_an_error_keras_wraps_is_said_in_its_own_words_not_its_last_line():
    """Keras 3 wraps an error raised inside a layer's call: its last line is one of the arguments
    the call received ("• kwargs=<class 'inspect._empty'>"), which a trial's FAILED line gave."""
    import traceback

    import keras
    import numpy as np

    from nnlab.errors import last_line, one_line

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError) as raised:
        model(np.zeros((2, 8, 3), "float32"))
    said = one_line(raised.value)
    assert said.startswith("ValueError: ") and "(2, 8, 3)" in said and "kwargs" not in said and "\n" not in said
    assert "[...]" in said  # the input's values, which Keras prints over many lines
    assert last_line("".join(traceback.format_exception(raised.value))) == said
