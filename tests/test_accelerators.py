"""Training settings for accelerators (issue 14, "GPUs"): mixed precision, XLA and steps per
execution, from an experiment's settings to every hypermodel's compiled model, with real Keras."""

from __future__ import annotations

import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest

from nnlab.accelerators import Acceleration
from nnlab.config import ExperimentConfig
from nnlab.data import DataSpec
from nnlab.policies import make_hypermodel
from nnlab.models import get_builder

SPEC = DataSpec(input_shape=(28, 28, 1), num_classes=10)


@pytest.fixture
def float32_afterwards():
    """Whatever a test does to Keras' global dtype policy, the next test finds float32."""
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def tiny_images(count=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 28, 28, 1), "float32"), rng.integers(0, 10, count)


def dfn(accelerate=None, **keywords):
    """The default DFN as a search builds it, through make_hypermodel."""
    hypermodel = make_hypermodel("dfn", get_builder("dfn"), SPEC, 16, 3, accelerate=accelerate, **keywords)
    return hypermodel.build(keras_tuner.HyperParameters())


def test_defaults_from_config_and_refused_values():
    assert Acceleration() == Acceleration(mixed_precision=False, jit_compile=False, steps_per_execution=1)
    config = ExperimentConfig(name="gpu", model="dfn", mixed_precision=True, jit_compile=True, steps_per_execution=8)
    assert Acceleration.from_config(config) == Acceleration(True, True, 8)
    assert Acceleration.from_config(ExperimentConfig(name="cpu")) == Acceleration()
    for wrong in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="steps_per_execution"):
            Acceleration(steps_per_execution=wrong)
    # False is Keras' own default, "auto": the compile call nnlab made before these settings.
    assert Acceleration().compile_options() == {"jit_compile": "auto", "steps_per_execution": 1}
    assert Acceleration(jit_compile=True, steps_per_execution=3).compile_options() == {"jit_compile": True,
                                                                                      "steps_per_execution": 3}


def test_importing_it_loads_no_tensorflow():
    script = ("import sys, nnlab.accelerators as a; a.Acceleration(True, True, 2).compile_options(); "
              "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.backends
def test_xla_and_steps_per_execution_reach_the_compiled_model():
    """On PyTorch, where --jit is torch.compile (37 s of compiling for this model on 2 cores, so
    not tried here) and steps per execution stays 1 (the next test), the plain compile."""
    keras.utils.set_random_seed(0)
    torch = keras.config.backend() == "torch"
    model = dfn(Acceleration(jit_compile=not torch, steps_per_execution=1 if torch else 4))
    assert model.jit_compile is not torch and model.steps_per_execution == (1 if torch else 4)
    assert model._compile_config.config["jit_compile"] is not torch  # saved with the model, as Keras keeps it
    inputs, labels = tiny_images()
    history = model.fit(inputs, labels, batch_size=16, epochs=1, verbose=0)  # 4 batches: one execution
    assert np.isfinite(history.history["loss"]).all() and int(model.optimizer.iterations) == 4


@pytest.mark.backends
def test_steps_per_execution_is_refused_in_one_line_where_keras_on_pytorch_would_fail(tmp_path):
    from nnlab.errors import ConfigError
    from nnlab.pipeline import check_before_start

    store = f"sqlite:///{tmp_path}/mlflow.db"
    flagged = ExperimentConfig(name="gpu", model="dfn", steps_per_execution=4, tracking_uri=store,
                               flags=("steps_per_execution",))
    filed = ExperimentConfig(name="gpu", model="dfn", steps_per_execution=4, tracking_uri=store, origin="gpu.toml")
    if keras.config.backend() != "torch":
        check_before_start(flagged)
        return
    for config, named in ((flagged, "--steps-per-execution 4"), (filed, "gpu.toml: steps_per_execution = 4")):
        with pytest.raises(ConfigError) as refused:
            check_before_start(config)
        assert str(refused.value) == (f"{named}: Keras on PyTorch runs one batch a call; leave it at 1 there (it is "
                                      "TensorFlow's and JAX's)")


def test_the_default_compiles_as_before():
    """Without acceleration, or with the default one, a model compiles as Keras compiles it with
    no such arguments (nnlab's call before these settings): "auto" resolved for this machine."""
    reference = get_builder("dfn")(keras_tuner.HyperParameters(), SPEC)
    reference.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def compiled(model):
        return model.jit_compile, model.steps_per_execution, model._compile_config.config["jit_compile"]

    assert compiled(dfn()) == compiled(dfn(Acceleration())) == compiled(reference)
    assert compiled(reference)[1] == 1


@pytest.mark.parametrize("family", ["gan", "transfer"])
def test_every_family_compiles_with_it(family):
    """The GAN compiles its two optimizers itself: XLA and steps per execution wrap its own
    train_step as they wrap Keras' one. The transfer family recompiles for fine-tuning through
    the same call as its first compile."""
    accelerate = Acceleration(jit_compile=True, steps_per_execution=4)
    if family == "gan":
        from nnlab.models.gan import build

        model = make_hypermodel("gan", build, SPEC, 32, 8, accelerate=accelerate).build(keras_tuner.HyperParameters())
    else:
        hypermodel = make_hypermodel("transfer", get_builder("dfn"), SPEC, 16, 3, None, accelerate=accelerate)
        assert hypermodel.accelerate is accelerate
        model = hypermodel._compiled(get_builder("dfn")(keras_tuner.HyperParameters(), SPEC), 1e-3)
    assert model.jit_compile is True and model.steps_per_execution == 4


@pytest.mark.backends
def test_mixed_precision_float16_compute_float32_variables(float32_afterwards):
    Acceleration(mixed_precision=True).activate()
    dense = keras.layers.Dense(4)
    dense.build((None, 3))
    assert (dense.compute_dtype, dense.variable_dtype, dense.kernel.dtype) == ("float16", "float32", "float32")
    assert keras.backend.standardize_dtype(dense(np.ones((2, 3), "float32")).dtype) == "float16"

    keras.utils.set_random_seed(0)
    model = dfn(Acceleration(mixed_precision=True))
    # Keras 3 wraps the compiled optimizer itself under mixed_float16 (auto_scale_loss).
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.Adam)
    inputs, labels = tiny_images(16)
    history = model.fit(inputs, labels, batch_size=16, epochs=1, verbose=0)  # one step
    assert np.isfinite(history.history["loss"]).all()
    assert all(weight.dtype == "float32" for weight in model.trainable_weights)
    # The probabilities in float32, as Keras' mixed-precision guide has the output.
    assert model.layers[-2].compute_dtype == "float16" and model.layers[-1].compute_dtype == "float32"

    # An average of such members averages in float32 too.
    from nnlab.champion import average_model
    from nnlab.tasks import get_task

    average = average_model([model, dfn(Acceleration(mixed_precision=True))], ["00", "01"],
                            get_task("classification"), SPEC)
    assert average.get_layer("average").compute_dtype == "float32"
    assert keras.backend.standardize_dtype(average(inputs[:2]).dtype) == "float32"

    Acceleration().activate()  # back to float32
    assert keras.layers.Dense(4).compute_dtype == "float32"
    assert not isinstance(dfn().optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.backends
def test_gpu_numbers_are_checked_against_the_gpus_found():
    """--gpus names GPUs by number: one the backend does not find is refused rather than left to a
    worker that would train on the CPU without a word (issue 26). Checked against this machine."""
    from nnlab.accelerators import BACKEND_TITLES, backend_name, missing_gpus, start_backend

    found = len(start_backend())
    assert missing_gpus([str(number) for number in range(found)]) is None
    problem = missing_gpus([str(found), "0"])
    if found == 0:
        assert problem == f"{BACKEND_TITLES[backend_name()]} finds no GPU on this machine; leave --gpus out to train on the CPU"
    else:
        assert problem == f"no GPU {found} here: {BACKEND_TITLES[backend_name()]} finds {found}, numbered 0 to {found - 1}"
