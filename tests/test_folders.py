"""The images data set: real MNIST digits written as PNG files, one folder per class, read back
as the user's own image folder; its mistakes; and one search end to end from an experiment file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from nnlab.config import load_config
from nnlab.data import DATASETS
from nnlab.data.folders import INTERPOLATION, check_images_option, load_images
from nnlab.errors import DataError
from nnlab.search import main
from conftest import search_here

PER_CLASS = 20  # 200 images in all: 40 test, 16 validation, 144 train


def write_digits(folder: Path, images, labels, per_class: int = PER_CLASS, mode: str = "L") -> Path:
    """Folders "0".."9", each with its first `per_class` digits as PNG files in PIL `mode`."""
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        for index, row in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            PIL.Image.fromarray(images[row]).convert(mode).save(folder / str(digit) / f"{index:02d}.png")
    return folder


def read_pngs(folder: Path) -> np.ndarray:
    """The PNG files under `folder` as the user holds them: (N, 28, 28, 1) float32 in 0-255."""
    return np.stack([np.asarray(PIL.Image.open(path), dtype=np.float32)
                     for path in sorted(folder.glob("*/*.png"))])[..., np.newaxis]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, mnist_subset):
    """Only read by the tests: ten class folders of 20 grey 28x28 PNG digits."""
    return write_digits(tmp_path_factory.mktemp("folders") / "digits", *mnist_subset)


def test_folder_loads_raw_pixels_with_its_class_names(digit_folder, mnist_subset):
    dataset = load_images(images=str(digit_folder), seed=3, validation_fraction=0.1)
    train, validation, test = dataset.train, dataset.validation, dataset.test
    assert (len(train[0]), len(validation[0]), len(test[0])) == (144, 16, 40)
    assert train[0].shape[1:] == dataset.spec.input_shape == (28, 28, 1)
    assert train[0].dtype == np.float32 and train[1].dtype == np.int64
    assert dataset.spec.pixel_max == 255.0 and train[0].max() == 255.0 and train[0].min() == 0.0
    assert dataset.spec.class_names == tuple("0123456789") and dataset.spec.num_classes == 10
    labels = np.concatenate([train[1], validation[1], test[1]])
    assert np.bincount(labels).tolist() == [PER_CLASS] * 10
    # Raw pixels, as written: every test image is one of the originals with its own label.
    originals, original_labels = mnist_subset
    for image, label in zip(*test):
        matches = np.flatnonzero(np.all(originals == image[..., 0].astype(np.uint8), axis=(1, 2)))
        assert label in original_labels[matches]
    assert dataset.source == (f"image folder {digit_folder} (10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9; "
                              "200 images, 28x28, grayscale)")
    assert dataset.uri == str(digit_folder.resolve())
    # The seed decides the split.
    again = load_images(images=str(digit_folder), seed=3)
    other = load_images(images=str(digit_folder), seed=4)
    assert np.array_equal(again.test[1], test[1]) and not np.array_equal(other.test[1], test[1])


def test_image_size_resizes_and_colour_images_give_three_channels(tmp_path, digit_folder, mnist_subset):
    resized = load_images(images=str(digit_folder), image_size=[14, 20], test_fraction=0.5)
    assert resized.spec.input_shape == (14, 20, 1) and len(resized.test[0]) == 100
    assert "200 images, resized to 14x20, grayscale" in resized.source
    colour = load_images(images=str(write_digits(tmp_path / "rgb", *mnist_subset, per_class=3, mode="RGB")))
    assert colour.spec.input_shape == (28, 28, 3) and colour.train[0].shape[1:] == (28, 28, 3)
    assert colour.source.endswith("30 images, 28x28, rgb)")


@pytest.mark.parametrize("size, mode", [((28, 28), "L"), ((14, 20), "L"), ((31, 17), "RGB")])
def test_without_tensorflow_pillow_reads_a_folder_as_keras_loader_does(tmp_path, digit_folder, mnist_subset, size,
                                                                     mode):
    """Where TensorFlow is not installed (Keras on JAX or PyTorch alone) Pillow decodes and
    keras.ops resizes (issue 33): the same images in the same order, the same pixels to within
    float rounding, at the images' own size, shrunk and enlarged, grey and colour."""
    from nnlab.data.folders import _class_folders, _read, _read_with_pillow, _scan

    folder = digit_folder if mode == "L" else write_digits(tmp_path / "rgb", *mnist_subset, per_class=3, mode="RGB")
    channels = 1 if mode == "L" else 3
    files, _, _ = _scan(folder, _class_folders(folder, str(folder)), str(folder))
    by_keras = _read(folder, str(folder), files, size, "grayscale" if channels == 1 else "rgb")
    by_pillow = _read_with_pillow(files, size, channels)
    assert np.array_equal(by_keras[1], by_pillow[1]) and by_keras[0].shape == by_pillow[0].shape
    assert np.abs(by_keras[0] - by_pillow[0]).max() < 1e-3


def test_predict_reads_an_odd_sized_image_as_training_does(tmp_path, mnist_subset):
    # Issue 31: one resize. Training read the folder with TensorFlow's decoder and
    # tf.image.resize; nnlab.predict resized with Pillow, which antialiases when it shrinks.
    import keras

    from nnlab.predict import image_batch

    images, labels = mnist_subset
    for mode, channels in (("L", 1), ("RGB", 3)):
        folder = tmp_path / mode
        for digit in range(2):
            (folder / str(digit)).mkdir(parents=True)
            for index, row in enumerate(np.flatnonzero(labels == digit)[:10]):
                # 61x45: shrunk on one side, grown on none, by odd factors
                picture = PIL.Image.fromarray(images[row]).resize((45, 61), PIL.Image.NEAREST).convert(mode)
                picture.save(folder / str(digit) / f"{index:02d}.png")
        dataset = load_images(images=str(folder), image_size=[28, 28], seed=0, validation_fraction=0.1)
        trained_on = np.concatenate([dataset.train[0], dataset.validation[0], dataset.test[0]])
        inputs = keras.Input((28, 28, channels))
        model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
        paths = sorted(folder.glob("*/*.png"))
        predicted, kept, refused = image_batch(paths, model)  # a model without to_unit_range: 0-1
        assert kept == paths and refused == []
        for pixels in predicted * 255.0:
            assert np.abs(trained_on - pixels).max(axis=(1, 2, 3)).min() < 1e-3, mode  # the very image
        # The fine-tune's input adapter resizes inside the model (a Resizing layer) the same way.
        raw = np.asarray(PIL.Image.open(paths[0]), dtype=np.float32).reshape(61, 45, channels)
        adapter = keras.layers.Resizing(28, 28, interpolation=INTERPOLATION)
        np.testing.assert_allclose(np.asarray(adapter(raw[np.newaxis]))[0], predicted[0] * 255.0, atol=1e-3)


def test_an_experiment_file_names_the_data_set_by_its_images_key(tmp_path):
    experiment = tmp_path / "shapes.toml"
    experiment.write_text('[data]\nimages = "data/shapes/"\nimage_size = [64, 64]\n')
    config = load_config(str(experiment))
    # Read from the experiment file's folder, wherever the command runs.
    assert (config.dataset, config.data["images"], config.model) == ("images", f"{tmp_path}/data/shapes/", "cnn")
    assert DATASETS["images"].default_model == "cnn"


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("images", "", "must be the path of a folder"),
    ("images", 3, "must be the path of a folder"),
    ("image_size", [28], "must be [height, width], two positive whole numbers"),
    ("image_size", [28, 0], "must be [height, width]"),
    ("image_size", [28.5, 28], "must be [height, width]"),
    ("test_fraction", 1, "must be a number between 0 and 1"),
    ("test_fraction", True, "must be a number between 0 and 1"),
    ("labels_per_class", 0, "must be a positive whole number"),
    ("images", "data/", None),
    ("image_size", [32, 48], None),
    ("test_fraction", 0.25, None),
])
def test_options_are_checked_before_reading(key, value, problem):
    found = check_images_option(key, value)
    assert found is None if problem is None else problem in found


def broken_folder(root: Path, kind: str, images, labels) -> tuple[str, str]:
    """An image folder broken in the way `kind` says: (its path, the message it must get)."""
    folder = root / kind
    if kind == "missing":
        return "no/such/folder/", "image folder no/such/folder/ does not exist"
    folder.mkdir()
    if kind == "empty":
        return str(folder), f"image folder {folder} has no class subfolders"
    if kind == "files-only":
        PIL.Image.fromarray(images[0]).save(folder / "0.png")
        return str(folder), f"image folder {folder} has no class subfolders"
    write_digits(folder, images, labels, per_class=2)
    if kind == "one-class":
        for digit in range(1, 10):
            for path in (folder / str(digit)).iterdir():
                path.unlink()
            (folder / str(digit)).rmdir()
        return str(folder), f"image folder {folder} has one class subfolder (0); a classifier needs at least two"
    if kind == "empty-class":
        for path in (folder / "3").iterdir():
            path.unlink()
        (folder / "3" / ".DS_Store").write_bytes(b"\0\1")  # hidden non-images are skipped, as Keras does
        return str(folder), f"image folder {folder}: class folder 3 holds no images"
    if kind == "text-file":
        (folder / "3" / "notes.txt").write_text("not a digit")
        return str(folder), f"{folder}/3/notes.txt is not an image Keras reads (.bmp, .gif, .jpeg, .jpg, .png)"
    if kind == "not-an-image":
        (folder / "3" / "00b.png").write_text("not a digit")
        return str(folder), f"{folder}/3/00b.png is not a readable image (cannot identify image file"
    if kind == "truncated":
        data = (folder / "5" / "01.png").read_bytes()
        (folder / "5" / "01.png").write_bytes(data[: len(data) // 2])
        return str(folder), f"{folder}/5/01.png is not a readable image ("
    if kind == "tiff":
        PIL.Image.fromarray(images[0]).save(folder / "7" / "02.png", format="TIFF")
        return str(folder), f"{folder}/7/02.png is a TIFF image; Keras reads BMP, GIF, JPEG and PNG"
    raise ValueError(kind)


BROKEN = ["missing", "empty", "files-only", "one-class", "empty-class", "text-file", "not-an-image", "truncated", "tiff"]


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_folders_are_named_in_one_line(tmp_path, mnist_subset, kind):
    path, message = broken_folder(tmp_path, kind, *mnist_subset)
    with pytest.raises(DataError) as raised:
        load_images(images=path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_other_loader_mistakes(tmp_path, digit_folder, mnist_subset):
    with pytest.raises(DataError, match=r"^the images data set reads \[data\] images = PATH, not --data-dir$"):
        load_images(data_dir=str(tmp_path), images=str(digit_folder))
    with pytest.raises(DataError, match=r"^data.image_size = \[0, 28\] must be \[height, width\]"):
        load_images(images=str(digit_folder), image_size=[0, 28])
    few = tmp_path / "few"
    for digit in (0, 1):
        (few / str(digit)).mkdir(parents=True)
        PIL.Image.fromarray(mnist_subset[0][digit]).save(few / str(digit) / "only.png")
    with pytest.raises(DataError, match=f"^image folder {few}: 2 images are too few to hold out test and validation"):
        load_images(images=str(few))


def refused(capsys, code, workdir) -> str:
    """The one line a refused search prints, after checking it created nothing."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("nnlab.search: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (workdir / "mlruns").exists() and not (workdir / "tuning").exists()
    return lines[0]


@pytest.mark.parametrize("kind", ["missing", "one-class", "text-file", "tiff"])
def test_the_search_command_refuses_a_broken_folder(workdir, capsys, mnist_subset, kind):
    path, message = broken_folder(workdir, kind, *mnist_subset)
    experiment = workdir / "broken.toml"
    experiment.write_text(f'[data]\nimages = "{path}"\n')
    assert message in refused(capsys, main([str(experiment)]), workdir)


@pytest.mark.parametrize(("table", "message"), [
    ('image_size = [0, 28]\n', "broken.toml: data.image_size = [0, 28] must be [height, width]"),
    ('test_fraction = 1.5\n', "broken.toml: data.test_fraction = 1.5 must be a number between 0 and 1"),
    ('imagez = "data/"\n', "data.imagez: unknown option of data set images; known: images, image_size"),
])
def test_the_search_command_refuses_bad_options(workdir, capsys, digit_folder, table, message):
    experiment = workdir / "broken.toml"
    experiment.write_text(f'[data]\nimages = "{digit_folder}"\n{table}')
    assert message in refused(capsys, main([str(experiment)]), workdir)


def test_the_search_command_refuses_a_data_dir_for_an_image_folder(workdir, capsys, digit_folder):
    experiment = workdir / "folder.toml"
    experiment.write_text(f'[data]\nimages = "{digit_folder}"\n')
    line = refused(capsys, main([str(experiment), "--data-dir", "elsewhere"]), workdir)
    assert line == "nnlab.search: error: the images data set reads [data] images = PATH, not --data-dir"


def test_a_search_over_an_image_folder_registers_a_model_that_reads_raw_images(workdir, capsys, digit_folder,
                                                                               tracking_uri):
    from mlflow import MlflowClient

    import nnlab

    experiment = workdir / "digitfolders.toml"
    experiment.write_text(f'model = "cnn"\ntuner = "random"\nmax_trials = 2\nepochs = 1\nfinal_epochs = 0\n'
                          f'seed = 2\nbatch_size = 32\n[data]\nimages = "{digit_folder}"\n')
    search_here(str(experiment), tracking_uri=tracking_uri)  # the command, its trials in this process
    captured = capsys.readouterr()
    assert f"data image folder {digit_folder} (10 classes" in captured.out and "144 train, 16 validation, 40 test" in captured.out

    version = MlflowClient(tracking_uri).get_model_version_by_alias("digitfolders-cnn", "champion")
    assert json.loads(version.tags["nnlab.class_names"]) == list("0123456789")
    images = read_pngs(digit_folder)[::20]  # one raw image of each class, 0-255 as read from its file
    model = nnlab.load_model("digitfolders-cnn", tracking_uri)
    from nnlab.models.layers import pixel_max_of

    assert pixel_max_of(model) == 255.0  # it scales 0-255 inside itself (each member of an average)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (10, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    # nnlab.predict on three of the PNG files: the class folder's name and its probability.
    from nnlab.predict import main as predict

    files = [digit_folder / digit / "00.png" for digit in ("3", "5", "8")]
    assert predict(["digitfolders-cnn", *map(str, files), "--tracking-uri", tracking_uri]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = model.predict(np.stack([read_pngs(digit_folder)[index] for index in (60, 100, 160)]), verbose=0)
    assert len(lines) == 3
    for line, path, probabilities in zip(lines, files, expected):
        assert line == f"{path}: {probabilities.argmax()} ({probabilities.max():.4f})"
