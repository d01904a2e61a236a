"""The Keras backend started without its start-up chatter, and the GPUs it finds named in one line.

nnlab trains on whichever backend Keras runs (KERAS_BACKEND, else ~/.keras/keras.json; Keras'
own default is TensorFlow): `start_backend` loads it and asks it for its GPUs. Loading
TensorFlow's libraries writes to the process's stderr before its own logging is set up ("All
log messages before absl::InitializeLog() is called are written to STDERR", "Could not find cuda
drivers on your machine", "failed call to cuInit", the CPU instructions it was not built for):
four to seven lines on a machine without a GPU, which TF_CPP_MIN_LOG_LEVEL does not reach. The
backend is loaded with the process's stderr (file descriptor 2, where the C++ code writes)
pointed at /dev/null, then restored: a Python error while loading still reaches the user, raised
after stderr is back.

On a machine with GPUs each backend's memory is handled its own way, and the GPUs found are
named: TensorFlow's memory growth on (it otherwise takes all of each GPU's memory for the first
model, and a second process on the same GPU finds none); JAX's preallocation off (it otherwise
takes three quarters of each GPU's memory at start, XLA_PYTHON_CLIENT_PREALLOCATE); PyTorch's
caching allocator, which takes memory as it needs it, as it is. On a machine without, nothing is said.

`Acceleration` carries an experiment's training settings for accelerators (issue 14, "GPUs"):
mixed precision for the whole process (`activate`), and what every hypermodel passes to
`model.compile` (`compile_options`): XLA (JAX: always on; PyTorch: torch.compile) and steps per execution.

The backends and Keras are imported inside functions: importing this module loads none of them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass


@contextlib.contextmanager
def _stderr_silenced():
    """The process's file descriptor 2, and Python's sys.stderr with it, pointed at /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


_gpus_said = False
# A backend's name as Keras says it -> the distribution that holds it (its version is recorded).
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# ... and as its project spells it, in what nnlab says.
BACKEND_TITLES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


@functools.cache
def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here, without importing it (asked once a process: an
    image folder read without it asks per image)."""
    return importlib.util.find_spec("tensorflow") is not None


def backend_name() -> str:
    """The Keras backend this process runs: "tensorflow", "jax" or "torch"."""
    import keras

    return keras.config.backend()


def _drop_retracing(record) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def _tensorflow_gpus(first: bool) -> tuple[list[str], str]:
    import tensorflow as tf

    if first:
        # TensorFlow's Python warnings are about tf.functions a user of nnlab does not write.
        tf.get_logger().setLevel(logging.ERROR)
    # One of them reaches a user who imported TensorFlow first (a notebook): "N out of the
    # last M calls to ... triggered tf.function retracing", from Keras' predict on the
    # champion's splits of different sizes. Only that one is dropped; a level the user set stays.
    if _drop_retracing not in tf.get_logger().filters:
        tf.get_logger().addFilter(_drop_retracing)
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):  # initialises CUDA: its errors on a CPU machine
        if first:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # the GPU is in use already in this process: as it is
                pass
        names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
    return names, "memory growth on"


def _jax_gpus() -> tuple[list[str], str]:
    import jax

    return [device.device_kind for device in jax.devices() if device.platform == "gpu"], "memory taken as needed"


def _torch_gpus() -> tuple[list[str], str]:
    import torch

    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return names, "memory taken as needed"


_OTHER_GPUS = {"jax": _jax_gpus, "torch": _torch_gpus}


def start_backend(echo=None) -> list[str]:
    """Load the Keras backend quietly, handle each GPU's memory its way, and return the GPUs'
    names; when there are any, `echo` gets one line naming them, once per process. Loaded once:
    later calls only return."""
    # INFO and WARNING lines of TensorFlow's C++ logging, once it is set up; a user's own wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Read by JAX when it first starts its GPUs; a user's own wins.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    loaded = set(sys.modules)  # before Keras, which loads its backend
    with _stderr_silenced():
        backend = backend_name()
        if backend == "tensorflow":  # its logger and GPU memory are set once, by the first to load it
            names, memory = _tensorflow_gpus("tensorflow" not in loaded)
        else:
            names, memory = _OTHER_GPUS[backend]()
        if backend != "tensorflow" and tensorflow_installed():
            # Keras' set_random_seed seeds TensorFlow too wherever it is installed, loading it
            # with its start-up lines: loaded here, quietly, instead.
            importlib.import_module("tensorflow")
    global _gpus_said
    if names and echo is not None and not _gpus_said:  # once, to the first caller that says it
        _gpus_said = True
        echo(f"GPU: {len(names)} found by {BACKEND_TITLES[backend]}, {memory}: "
             + ", ".join(f"{index}: {name}" for index, name in enumerate(names)))
    return names


def missing_gpus(requested) -> str | None:
    """Why GPU numbers asked for (--gpus) name no GPU the backend finds here, or None. A worker
    handed a number that names none would train on the CPU without a word."""
    found = start_backend()
    missing = sorted({int(number) for number in requested if int(number) >= len(found)})
    if not missing:
        return None
    if not found:
        return f"{BACKEND_TITLES[backend_name()]} finds no GPU on this machine; leave --gpus out to train on the CPU"
    names = ", ".join(str(number) for number in missing)
    return f"no GPU {names} here: {BACKEND_TITLES[backend_name()]} finds {len(found)}, numbered 0 to {len(found) - 1}"


# Keras' policy for float16 computation with float32 variables. Under it Keras 3 wraps a compiled
# model's optimizer in a LossScaleOptimizer itself (Model.compile's auto_scale_loss, on by
# default), and its own train_step scales the loss: nothing else for nnlab to do.
MIXED_POLICY = "mixed_float16"


@dataclass(frozen=True)
class Acceleration:
    """How models train on an accelerator: the experiment's mixed_precision, jit_compile and
    steps_per_execution. The defaults train exactly as nnlab did before these settings."""

    # float16 computation with float32 variables, for the whole process (`activate`).
    mixed_precision: bool = False
    # True: XLA for every train, test and predict step. False leaves Keras' own "auto", as nnlab
    # always did: off on a machine without a GPU, on where there is one and every layer of the
    # model supports XLA. Keras turns a True off, with a warning, for a model with a layer that
    # does not (RandomTranslation, the CNN's augmentation; a cuDNN LSTM or GRU on a GPU).
    jit_compile: bool = False
    # Batches each call into the compiled train (test, predict) function runs: fewer Python round
    # trips per epoch. Callbacks' batch hooks (the trial timeout's clock) then run once per call.
    steps_per_execution: int = 1

    def __post_init__(self):
        count = self.steps_per_execution
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"steps_per_execution = {count!r} must be a whole number, at least 1")

    @classmethod
    def from_config(cls, config) -> Acceleration:
        """The settings of an ExperimentConfig (validated by nnlab.config)."""
        return cls(mixed_precision=config.mixed_precision, jit_compile=config.jit_compile,
                   steps_per_execution=config.steps_per_execution)

    def activate(self) -> None:
        """Keras' global dtype policy for the models built from now on in this process:
        mixed_float16 with mixed precision, else float32 (the default, set back). Called before
        each model is built: Keras' clear_session, which KerasTuner runs before every trial,
        forgets the policy (measured: with it set once per search, every trial trained in float32)."""
        import keras

        keras.mixed_precision.set_global_policy(MIXED_POLICY if self.mixed_precision else "float32")
        if self.mixed_precision:
            _float16_started()

    def compile_options(self) -> dict:
        """Keyword arguments for `model.compile`: "auto" (Keras' default) unless XLA is asked for."""
        return {"jit_compile": True if self.jit_compile else "auto", "steps_per_execution": self.steps_per_execution}


@functools.cache
def _float16_started() -> None:
    """TensorFlow's first float16 value writes a line from its C++ code on a CPU without AVX-512's
    half floats ("oneDNN supports DT_HALF only on platforms with AVX-512. Falling back to ..."),
    tagged E though nothing fails: made once here with stderr silenced; the search says what it
    means in its own words (emulated, slower: pipeline's start lines)."""
    if backend_name() == "tensorflow":
        import tensorflow as tf

        with _stderr_silenced():
            tf.ones((1,), tf.float16)


@contextlib.contextmanager
def caller_policy_kept():
    """Within: a search sets Keras' global dtype policy for its models (Acceleration.activate);
    after, it is the caller's again. From Python, a notebook's own models after a mixed-precision
    search were built in float16, and a policy of the user's was left at nnlab's float32. Keras is
    not imported for it: where it was not yet, the caller had the default."""
    keras = sys.modules.get("keras")
    before = keras.config.dtype_policy() if keras is not None else None
    try:
        yield
    finally:
        keras = sys.modules.get("keras")
        if keras is not None:
            keras.config.set_dtype_policy(before or keras.config.floatx())
