"""Every user mistake the search command can meet: one line on stderr naming the offending value,
exit code 2, no traceback, and nothing created in MLflow or tuning/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import BROKEN_MNIST, write_broken_mnist
from nnlab.search import main


TOML_MISTAKES = [
    ("nope", None, "unknown experiment 'nope'; known: breast_cancer, cifar10, co2, diabetes, digits, fashion_mnist, mnist, wine"),
    ("bad.toml", 'dataset = "cifar"\n', "unknown dataset 'cifar'; known: breast_cancer, cifar10, co2, csv, diabetes, digits, fashion_mnist, images, mnist, wine"),
    ("bad.toml", 'model = "vae"\n', "unknown model 'vae'; known: cnn, dfn, gan, gru, linear, lstm, rnn"),
    ("bad.toml", 'dataset = "digits"\nmodel = "gan"\n', "model gan is scored by fid_mnist, which judges MNIST digits: "
     "dataset mnist, not digits"),
    ("bad.toml", 'model = "gan"\nensemble = 3\n', "ensemble = 3: an average of generators' images is no generator's"),
    ("bad.toml", 'tuner = "annealing"\n', "unknown tuner 'annealing'; known: bayesian, grid, hyperband, random"),
    ("bad.toml", "epochs = \n", "bad.toml: not valid TOML"),
    ("bad.toml", "epochz = 3\n", "bad.toml: unknown key 'epochz'; known keys: name, dataset"),
    ("bad.toml", 'epochs = "3"\n', "bad.toml: epochs = '3' must be an integer"),
    ("bad.toml", "epochs = 0\n", "bad.toml (with command-line overrides): epochs = 0 must be at least 1"),
    ("bad.toml", 'name = "../elsewhere"\n', "name '../elsewhere' must be letters, digits"),
    ("bad.toml", 'name = "a/b"\n', "name 'a/b' must be letters, digits"),
    ("bad.toml", 'time_budget = "soon"\n', "time_budget = 'soon' is not a duration (examples: 900, 15m, 1h, 1h30m)"),
    ("bad.toml", "trial_timeout = -5\n", "trial_timeout = -5 must be longer than 0 seconds"),
    ("bad.toml", "keep_checkpoints = 0\n", "keep_checkpoints = 0 must be at least 1"),
    ("bad.toml", "[space]\nlearning_rate = [0.1, 0.001]\n",
     "space.learning_rate = [0.1, 0.001]: the range's minimum 0.1 exceeds its maximum 0.001"),
    ("bad.toml", "[space]\ndropout = [0.1, 'x']\n", "space.dropout = [0.1, 'x'] mixes kinds of values"),
    ("bad.toml", "[space]\nneurons = [32, 64]\n",
     "space.neurons: the model declares no such hyperparameter; known: activation, augment_shift"),
    ("bad.toml", "[space]\nactivation = 'gelu'\n", "space.activation = 'gelu': 'gelu' is not one of relu, tanh, sigmoid"),
    ("bad.toml", "[space]\nconv_blocks = 2.5\n", "space.conv_blocks = 2.5: conv_blocks takes whole numbers"),
    ("bad.toml", "[space]\nlearning_rate = [0, 0.1]\n", "learning_rate is searched on a log scale, so its minimum must be above 0"),
]


def assert_refused(capsys, code, workdir, message):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("nnlab.search: error: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err + captured.out
    # Refused before anything was tracked or saved.
    assert not (workdir / "mlruns").exists() and not (workdir / "tuning").exists()


@pytest.mark.parametrize(("experiment", "text", "message"), TOML_MISTAKES)
def test_experiment_mistakes(workdir, capsys, idx_dir, experiment, text, message):
    if text is not None:
        (workdir / experiment).write_text(text)
    assert_refused(capsys, main([experiment, "--data-dir", str(idx_dir)]), workdir, message)


@pytest.mark.parametrize("kind", BROKEN_MNIST)
def test_data_directory_mistakes(workdir, capsys, mnist_subset, kind):
    message = write_broken_mnist(workdir / "data", kind, "train", *mnist_subset)
    assert_refused(capsys, main(["mnist", "--data-dir", str(workdir / "data")]), workdir, message)


def test_missing_data_directory(workdir, capsys):
    assert_refused(capsys, main(["mnist", "--data-dir", "no/such/dir"]), workdir, "data directory no/such/dir does not exist")


@pytest.mark.parametrize(("arguments", "message"), [
    (["mnist", "--model", "vae"], "argument --model: invalid choice: 'vae' (choose from 'cnn', 'dfn', 'linear', 'rnn', 'lstm', 'gru', 'gan')"),
    (["mnist", "--time-budget", "15 minutes"], "argument --time-budget: '15 minutes' is not a duration"),
    (["mnist", "--time-budget", "0"], "argument --time-budget: '0' must be longer than 0 seconds"),
    (["mnist", "--max-trials", "0"], "argument --max-trials: '0' must be at least 1"),
])
def test_flag_mistakes(workdir, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert_refused(capsys, exit_.value.code, workdir, message)


def test_a_search_already_running_is_not_run_twice(workdir, capsys, idx_dir):
    from nnlab.state import search_lock

    with search_lock(workdir / "tuning" / "mnist-cnn"):
        code = main(["mnist", "--data-dir", str(idx_dir)])
    captured = capsys.readouterr()
    assert code == 2 and "search mnist-cnn is already running (process " in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and not (workdir / "mlruns").exists()


def test_a_process_gets_no_traceback_either(workdir, idx_dir):
    # The same path through a real interpreter: what a user sees in a shell.
    (workdir / "bad.toml").write_text("[space]\nunits_9 = [1, 2]\n")
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "bad.toml", "--data-dir", str(idx_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # TensorFlow's own start-up lines (absl, CUDA probing) may precede it; nnlab says one line.
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("nnlab.search:")]
    assert line.startswith("nnlab.search: error: bad.toml (with command-line overrides): space.units_9: the model "
                           "declares no such hyperparameter; known: activation, augment_shift, batch_norm, batch_size, conv_blocks, convs_per_block, "
                           "dense_units, dropout, filters_0, filters_1, filters_2, learning_rate")
    assert not (workdir / "mlruns").exists()
