"""The data sets that exist only as a download (fashion_mnist, cifar10): offline, one line and
exit code 2 before anything is created; a download that works, or their files in --data-dir, read
as the loaders promise. Nothing here downloads: small arrays stand in for what Keras returns."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import offline, write_idx

from nnlab.data import DATASETS, downloads, load_dataset
from nnlab.data.downloads import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, load_cifar10, load_fashion_mnist
from nnlab.errors import DataError
from nnlab.search import main

LOADERS = {"fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}
DOWNLOADS = {"fashion_mnist": "_download_fashion_mnist", "cifar10": "_download_cifar10"}


def keras_like(name: str, train: int = 60, test: int = 20, seed: int = 0):
    """What keras.datasets.NAME.load_data() returns, in its shapes and dtypes, small."""
    rng = np.random.default_rng(seed)
    shape, label_shape = ((28, 28), ()) if name == "fashion_mnist" else ((32, 32, 3), (1,))  # cifar: labels (N, 1)

    def part(count):
        return (rng.integers(0, 256, (count, *shape), dtype=np.uint8),
                np.arange(count, dtype=np.uint8).reshape(count, *label_shape) % 10)

    return part(train), part(test)


@pytest.mark.parametrize("name", LOADERS)
def test_a_failed_download_is_one_line_that_says_what_to_do(name):
    with pytest.raises(DataError) as error:
        LOADERS[name](download=offline)
    message = str(error.value)
    assert message.startswith(f"{name}: download failed (no network in tests); run once with internet access "
                              "(Keras caches it in ~/.keras/datasets) or pass --data-dir with ")
    assert "\n" not in message


def test_keras_offline_wording_is_kept_short():
    def keras_offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.gz: None -- [Errno -2] Name or "
                        "service not known\nsecond line")

    with pytest.raises(DataError, match=r"download failed \(\[Errno -2\] Name or service not known\); ") as error:
        load_fashion_mnist(download=keras_offline)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", LOADERS)
def test_the_command_refuses_offline_before_creating_anything(workdir, capsys, monkeypatch, name):
    # The loader's default download, as `python -m nnlab.search NAME` reaches it, made to fail.
    monkeypatch.setattr(downloads, DOWNLOADS[name], offline)
    code = main([name])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith(f"nnlab.search: error: {name}: download failed "), captured.err
    assert "--data-dir" in lines[0] and "Traceback" not in captured.err + captured.out
    assert not (workdir / "mlruns").exists() and not (workdir / "tuning").exists()


@pytest.mark.parametrize(("name", "shape", "classes"), [
    ("fashion_mnist", (28, 28, 1), FASHION_MNIST_CLASSES),
    ("cifar10", (32, 32, 3), CIFAR10_CLASSES),
])
def test_a_download_that_works(name, shape, classes):
    (train_images, _), (test_images, test_labels) = keras_like(name)
    dataset = LOADERS[name](seed=1, validation_fraction=0.1, download=lambda: keras_like(name))
    assert dataset.name == name and dataset.uri == f"keras.datasets.{name}"
    assert dataset.source == f"keras.datasets.{name} (60 train + 20 test)"
    assert [len(part[0]) for part in (dataset.train, dataset.validation, dataset.test)] == [54, 6, 20]
    for images, labels in (dataset.train, dataset.validation, dataset.test):
        assert images.shape[1:] == shape and images.dtype == np.float32
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert labels.shape == (len(images),) and labels.dtype == np.int64
    # The official test set, in its order, scaled; training shuffled before validation is split off.
    np.testing.assert_allclose(dataset.test[0].reshape(test_images.shape), test_images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(dataset.test[1], test_labels.reshape(-1))
    assert sorted(np.concatenate([dataset.train[1], dataset.validation[1]])) == sorted(np.arange(60) % 10)
    assert dataset.spec.input_shape == shape and dataset.spec.num_classes == 10
    assert dataset.spec.class_names == classes and classes[0] in ("T-shirt/top", "airplane")


@pytest.mark.parametrize("name", LOADERS)
def test_registered_and_loaded_by_name(monkeypatch, name):
    assert DATASETS[name].kind == "image" and DATASETS[name].default_model == "cnn"
    monkeypatch.setattr(downloads, DOWNLOADS[name], lambda: keras_like(name))
    dataset = load_dataset(name, {"labels_per_class": 2}, seed=0, validation_fraction=0.1)
    assert len(dataset.train[0]) == 20 and len(dataset.test[0]) == 20


def test_a_download_of_the_wrong_shape_is_refused():
    (images, labels), test = keras_like("cifar10")
    with pytest.raises(DataError, match=r"keras.datasets.cifar10 \(train\): images have shape \(60, 32, 32\), "):
        load_cifar10(download=lambda: ((images[..., 0], labels), test))


def test_fashion_mnist_idx_files(tmp_path):
    (train_images, train_labels), (test_images, test_labels) = keras_like("fashion_mnist", 50, 30, seed=4)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_images, compress=True)  # as Keras caches them
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_labels, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_labels)
    dataset = load_fashion_mnist(tmp_path, seed=0, validation_fraction=0.2, download=offline)
    assert [len(part[0]) for part in (dataset.train, dataset.validation, dataset.test)] == [40, 10, 30]
    np.testing.assert_allclose(dataset.test[0][..., 0], test_images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(dataset.test[1], test_labels)
    assert dataset.uri == str(tmp_path) and "Fashion-MNIST IDX" in dataset.source
    assert dataset.spec.class_names == FASHION_MNIST_CLASSES


def test_fashion_mnist_directory_without_a_test_pair(tmp_path):
    (images, labels), _ = keras_like("fashion_mnist")
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=f"data directory {tmp_path} holds no Fashion-MNIST t10k files"):
        load_fashion_mnist(tmp_path, download=offline)


def write_cifar_batches(folder, train: int = 5, test: int = 7):
    """The batch files of cifar-10-python.tar.gz, small: dicts with bytes keys, rows of 3072 bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, count in [*((f"data_batch_{number}", train) for number in range(1, 6)), ("test_batch", test)]:
        batch = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(count)],
                 b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_batches_folder(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    first = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())[b"data"][0]
    for data_dir in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the folder or the one holding it
        dataset = load_cifar10(data_dir, seed=0, validation_fraction=0.2, download=offline)
        assert [len(part[0]) for part in (dataset.train, dataset.validation, dataset.test)] == [20, 5, 7]
        assert dataset.test[0].shape == (7, 32, 32, 3) and dataset.test[0].dtype == np.float32
        # Rows are stored channel by channel (1024 red, 1024 green, 1024 blue): the pixel (0, 0)'s colours.
        np.testing.assert_allclose(dataset.test[0][0, 0, 0], first[[0, 1024, 2048]] / 255.0, atol=1e-7)
        assert dataset.uri == str(tmp_path / "cifar-10-batches-py")


def test_cifar10_folder_missing_a_batch(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"holds no CIFAR-10 batches \(data_batch_3 missing; "):
        load_cifar10(tmp_path, download=offline)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3: cannot read as a CIFAR-10 batch"):
        load_cifar10(tmp_path, download=offline)
