"""`python -m nnlab.predict MODEL FILE...`: one prediction per image file or CSV row, the class
with its probability or the value; a file the model cannot take is one line naming it."""

from __future__ import annotations

from PIL import Image

import nnlab
from nnlab.predict import main


def test_predicts_png_digits_and_names_a_file_it_cannot_take(searched_store, mnist_subset, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", searched_store.tracking_uri)
    images, labels = mnist_subset
    paths = []
    for index in (0, 700, 1400):  # digits as a user saves them: 8-bit grey PNGs, one a larger size
        path = tmp_path / f"digit_{labels[index]}.png"
        image = Image.fromarray(images[index])
        (image.resize((56, 56)) if index == 1400 else image).save(path)
        paths.append(path)
    assert main(["mnist-cnn", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    model = nnlab.load_model("mnist-cnn", searched_store.tracking_uri)
    expected = model.predict(images[[0, 700]][..., None] / 255.0, verbose=0)
    assert len(lines) == 3
    for line, path, probabilities in zip(lines, paths, expected):
        digit, probability = line.split(": ")[1].split(" ")
        assert line.startswith(f"{path}: ")
        assert int(digit) == probabilities.argmax()
        assert abs(float(probability.strip("()")) - probabilities.max()) < 1e-3

    (tmp_path / "notes.txt").write_text("not a digit")
    assert main(["mnist-cnn", str(paths[0]), str(tmp_path / "notes.txt"), str(tmp_path / "gone.png")]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1  # the good file is still predicted
    assert captured.err.strip().splitlines() == [
        f"nnlab.predict: {tmp_path / 'notes.txt'}: not an image Pillow can open",
        f"nnlab.predict: {tmp_path / 'gone.png'}: No such file or directory",
    ]


def test_an_unknown_model_is_one_line(searched_store, tmp_path, capsys):
    assert main(["mnist-vae", str(tmp_path / "x.png"), "--tracking-uri", searched_store.tracking_uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnlab.predict: error: no registered model 'mnist-vae'")



def test_the_pixel_range_is_found_inside_an_average_champion():
    """An image folder's model takes 0-255 (its to_unit_range layer); the average of two such
    models holds that layer inside its members, and takes the same."""
    import keras_tuner

    from nnlab.champion import average_model
    from nnlab.data import DataSpec
    from nnlab.models import get_builder
    from nnlab.models.layers import pixel_max_of
    from nnlab.tasks import get_task

    spec = DataSpec(input_shape=(8, 8, 1), num_classes=3, pixel_max=255.0)
    members = [get_builder("linear")(keras_tuner.HyperParameters(), spec) for _ in range(2)]
    assert pixel_max_of(members[0]) == 255.0
    assert pixel_max_of(average_model(members, ["00", "01"], get_task("classification"), spec)) == 255.0
    assert pixel_max_of(get_builder("linear")(keras_tuner.HyperParameters(), DataSpec(input_shape=(8, 8, 1),
                                                                                     num_classes=3))) == 1.0
