"""TensorFlow started without its start-up chatter, and the GPUs it finds named in one line.

Loading TensorFlow's libraries writes to the process's stderr before its own logging is set up
("All log messages before absl::InitializeLog() is called are written to STDERR", "Could not find
cuda drivers on your machine", "failed call to cuInit", the CPU instructions it was not built
for): four to seven lines on a machine without a GPU, which TF_CPP_MIN_LOG_LEVEL does not reach.
`start_tensorflow` loads TensorFlow and asks for its GPUs with the process's stderr (file
descriptor 2, where the C++ code writes) pointed at /dev/null, then restores it: a Python error
while loading still reaches the user, raised after stderr is back.

On a machine with GPUs it turns memory growth on (TensorFlow otherwise takes all of each GPU's
memory for the first model, and a second process on the same GPU finds none) and says which it
found; on one without, it says nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys


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


def start_tensorflow(echo=None) -> list[str]:
    """Load TensorFlow quietly, turn memory growth on for each GPU, and return their names; when
    there are any, `echo` gets one line naming them. Once per process: later calls only return."""
    # INFO and WARNING lines of TensorFlow's C++ logging, once it is set up; a user's own wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    first = "tensorflow" not in sys.modules
    with _stderr_silenced():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")  # initialises CUDA: its errors on a CPU machine
        names = []
        for gpu in gpus:
            if first:
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:  # the GPU is in use already in this process: as it is
                    pass
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
    if names and first and echo is not None:
        echo(f"GPU: {len(names)} found, memory growth on: "
             + ", ".join(f"{index}: {name}" for index, name in enumerate(names)))
    return names
