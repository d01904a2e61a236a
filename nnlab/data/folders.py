"""images: the user's own image folders, one subfolder per class, as an experiment file names them:

    [data]
    images = "data/shapes/"     # data/shapes/circle/*.png, data/shapes/square/*.png, ...
    image_size = [64, 64]       # optional: default the first image's size
    test_fraction = 0.2         # optional

Keras reads the images (`keras.utils.image_dataset_from_directory`); the classes are the sorted
subfolder names. Keras silently skips a file it cannot read by its extension, so every file is
checked here first, and the first that is not an image Keras reads is named. The pixels stay as
the user holds them (0-255): the spec's `pixel_max` tells the model to scale them inside itself,
so that a registered model predicts on images read straight from files. `read_image` reads one
file the same way, decoder and resize (bilinear, no antialiasing), for nnlab.predict.

Where TensorFlow is not installed (Keras on JAX or PyTorch alone), Pillow decodes every image
and keras.ops.image.resize resizes it, bilinear without antialiasing as well, in the same order
(the sorted class folders, each one's files sorted by name, as Keras' loader lists them).

TensorFlow, Keras and Pillow are imported inside functions, when the folder is read: a config
check needs none.
"""

from __future__ import annotations

import io
import os
from numbers import Real
from pathlib import Path

import numpy as np

from nnlab.accelerators import tensorflow_installed
from nnlab.data.types import DataSpec, Dataset
from nnlab.data.mnist import _split
from nnlab.data.subsets import _whole, check_option
from nnlab.errors import DataError, InputError

PIXEL_MAX = 255.0  # 8-bit images: Keras decodes every format to 0-255
# The extensions Keras reads (keras.utils.image_dataset_from_directory skips all others) and the
# formats behind them, as PIL names them: a TIFF renamed .png passes the extension, not the decoder.
KERAS_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
KERAS_FORMATS = {"BMP", "DIB", "GIF", "JPEG", "MPO", "PNG"}
GREY_MODES = {"L", "1"}  # PIL's one-channel modes; any other becomes RGB
# How every image nnlab reads is resized, in training (Keras' loader: tf.image.resize, which does
# not antialias) and in nnlab.predict (read_image); the fine-tune's adapter, a Resizing layer,
# calls the same resize inside the model.
INTERPOLATION = "bilinear"
# The first bytes of the formats TensorFlow's decode_image reads, as Keras' loader uses it.
TENSORFLOW_DECODES = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM")
READ_BATCH = 256  # images per batch as Keras reads them: a batch of one is slow, all at once large
SHOWN_CLASSES = 12  # class names the source line lists before "..."


def check_images_option(key: str, value) -> str | None:
    """Why a [data] value of the images data set cannot be taken (the text after
    "data.<key> = <value> "), or None."""
    if key == "images":
        if not isinstance(value, str) or not value.strip():
            return "must be the path of a folder with one subfolder of images per class"
        return None
    if key == "image_size":
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(_whole(side) and side > 0 for side in value)):
            return "must be [height, width], two positive whole numbers of pixels"
        return None
    if key == "test_fraction":
        if not isinstance(value, Real) or isinstance(value, bool) or not 0 < value < 1:
            return "must be a number between 0 and 1 (the share of the images held out for testing)"
        return None
    return check_option(key, value)


def _class_folders(folder: Path, shown: str) -> list[str]:
    """The class subfolder names, sorted and without hidden ones, as Keras lists them."""
    if not folder.exists():
        raise DataError(f"image folder {shown} does not exist")
    if not folder.is_dir():
        raise DataError(f"image folder {shown} is a file, not a folder with one subfolder of images per class")
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise DataError(f"image folder {shown} has no class subfolders (expected one subfolder of images per class)")
    if len(names) < 2:
        raise DataError(f"image folder {shown} has one class subfolder ({names[0]}); a classifier needs at least two")
    return names


def _scan(folder: Path, names: list[str], shown: str) -> tuple[list[tuple[Path, int]], list[tuple[int, int]], set[str]]:
    """Every file of every class folder opened, in the order Keras reads them: ((path, label) of
    each image, sizes as (width, height), PIL modes). The first file that is not an image Keras
    reads is named in a DataError."""
    import PIL.Image

    found_files, sizes, modes = [], [], set()
    for label, name in enumerate(names):
        found = 0
        # Keras walks each class folder recursively, sorted by folder, then by file name.
        for root, _, files in sorted(os.walk(folder / name), key=lambda entry: entry[0]):
            for file_name in sorted(files):
                path = os.path.join(shown, os.path.relpath(os.path.join(root, file_name), folder))
                if not file_name.lower().endswith(KERAS_EXTENSIONS):
                    if file_name.startswith("."):  # .DS_Store and the like: Keras skips them too
                        continue
                    raise DataError(f"{path} is not an image Keras reads ({', '.join(KERAS_EXTENSIONS)}); "
                                    f"remove it from image folder {shown}")
                try:
                    with PIL.Image.open(os.path.join(root, file_name)) as image:
                        image_format, size, mode = image.format, image.size, image.mode
                        image.verify()  # the whole file, not just its header: a truncated file fails here
                except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
                    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise DataError(f"{path} is not a readable image ({reason})") from None
                if image_format not in KERAS_FORMATS:
                    raise DataError(f"{path} is a {image_format} image; Keras reads BMP, GIF, JPEG and PNG")
                found += 1
                found_files.append((Path(root) / file_name, label))
                sizes.append(size)
                modes.add(mode)
        if not found:
            raise DataError(f"image folder {shown}: class folder {name} holds no images")
    return found_files, sizes, modes


def _read(folder: Path, shown: str, files: list[tuple[Path, int]], image_size: tuple[int, int], color_mode: str):
    """All images as float32 (N, height, width, channels) in 0-255 and int64 labels, in file order
    (`files`, as _scan found them, is what Keras' reader finds)."""
    if not tensorflow_installed():
        return _read_with_pillow(files, image_size, 1 if color_mode == "grayscale" else 3)
    import keras
    import tensorflow as tf

    reader = keras.utils.image_dataset_from_directory(
        str(folder), labels="inferred", label_mode="int", color_mode=color_mode, image_size=image_size,
        shuffle=False, batch_size=READ_BATCH, interpolation=INTERPOLATION, verbose=False)
    batches = []
    try:
        for images, labels in reader.as_numpy_iterator():
            batches.append((images.astype(np.float32), labels.astype(np.int64)))
    except tf.errors.OpError as error:  # a file PIL reads and TensorFlow's decoder does not
        raise DataError(f"image folder {shown}: Keras cannot decode an image ({error.message.splitlines()[0]})") from None
    return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])


def _read_with_pillow(files: list[tuple[Path, int]], image_size: tuple[int, int], channels: int):
    """_read without TensorFlow: every image Pillow decodes, resized as read_image resizes."""
    images = [read_image(path, *image_size, channels) for path, _ in files]
    return np.stack(images).astype(np.float32), np.asarray([label for _, label in files], dtype=np.int64)


def read_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One image file as float32 (height, width, channels) in 0-255, read as an image folder is
    read for training: TensorFlow's decoder with `channels`, then tf.image.resize (INTERPOLATION).
    A format TensorFlow does not decode (TIFF, WebP, ...) Pillow decodes, greyed or coloured as
    Pillow does, then the same resize. Without TensorFlow, Pillow decodes every format and
    keras.ops.image.resize resizes. An InputError says why a file cannot be read."""
    import PIL.Image

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError(error.strerror or str(error)) from None
    if not tensorflow_installed():
        return _pillow_read(data, height, width, channels)
    import tensorflow as tf

    try:
        if data.startswith(TENSORFLOW_DECODES):
            pixels = tf.io.decode_image(data, channels=channels, expand_animations=False)
        else:
            with PIL.Image.open(io.BytesIO(data)) as image:
                pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
                pixels = pixels.reshape(*pixels.shape[:2], channels)
    except tf.errors.InvalidArgumentError as error:
        raise InputError(f"an image TensorFlow cannot decode ({error.message.splitlines()[0]})") from None
    except (PIL.UnidentifiedImageError, OSError):
        raise InputError("not an image Pillow can open") from None
    return tf.image.resize(pixels, (height, width), method=INTERPOLATION).numpy()


def _pillow_read(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    import keras
    import PIL.Image

    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except (PIL.UnidentifiedImageError, OSError):
        raise InputError("not an image Pillow can open") from None
    pixels = pixels.reshape(*pixels.shape[:2], channels)
    resized = keras.ops.image.resize(pixels, (height, width), interpolation=INTERPOLATION, antialias=False)
    return keras.ops.convert_to_numpy(resized).astype(np.float32)


def load_images(data_dir=None, seed: int = 0, validation_fraction: float = 0.1, images: str | None = None,
                image_size=None, test_fraction: float = 0.2) -> Dataset:
    """The image folder `images` (one subfolder per class) as (N, height, width, channels) float32
    in 0-255 with int64 labels in the sorted subfolders' order: resized to `image_size` [height,
    width] (default: the first image's size), grayscale when every image is grey, else RGB.
    Shuffled with `seed`, `test_fraction` is held out for test, then `validation_fraction` of
    the rest for validation."""
    if data_dir is not None:
        raise DataError("the images data set reads [data] images = PATH, not --data-dir")
    if images is None:
        raise DataError("the images data set needs [data] images = PATH, a folder with one subfolder per class")
    for key, value in (("images", images), ("image_size", image_size), ("test_fraction", test_fraction)):
        problem = None if value is None else check_images_option(key, value)
        if problem:
            raise DataError(f"data.{key} = {value!r} {problem}")
    folder, shown = Path(images), images
    names = _class_folders(folder, shown)
    files, sizes, modes = _scan(folder, names, shown)
    count = len(files)
    width, height = sizes[0]
    target = (height, width) if image_size is None else tuple(image_size)
    color_mode = "grayscale" if modes <= GREY_MODES else "rgb"
    inputs, labels = _read(folder, shown, files, target, color_mode)

    rng = np.random.default_rng(seed)
    rest, test = _split(inputs, labels, test_fraction, rng)
    train, validation = _split(*rest, validation_fraction, rng)
    if not len(train[0]):
        raise DataError(f"image folder {shown}: {count} images are too few to hold out test and validation "
                        "images and keep any for training")
    as_found = all((size[1], size[0]) == target for size in sizes)  # (width, height) as PIL gives it
    shown_names = ", ".join(names[:SHOWN_CLASSES]) + (", ..." if len(names) > SHOWN_CLASSES else "")
    return Dataset(
        name=folder.resolve().name,  # as a CSV's is its file's: MLflow's dataset inputs show it
        train=train,
        validation=validation,
        test=test,
        spec=DataSpec(input_shape=inputs.shape[1:], num_classes=len(names), pixel_max=PIXEL_MAX,
                      class_names=tuple(names)),
        source=(f"image folder {shown} ({len(names)} classes: {shown_names}; {count} images, "
                f"{'' if as_found else 'resized to '}{target[0]}x{target[1]}, {color_mode})"),
        uri=str(folder.resolve()),
    )
