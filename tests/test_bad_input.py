"""Every user mistake the search command can meet, as one table: one line on stderr naming the
offending file, key, flag or value, exit code 2, no traceback, and nothing created or changed:
the working folder (the MLflow store and its registry in mlruns/, tuning/) exactly as before.

`snapshot` and `refuse` are the rule's reusable check: a case of another kind takes a snapshot,
runs the command, and asserts the rule with them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BROKEN_MNIST, write_broken_mnist
from nnlab.search import main

PREFIX = "nnlab.search: error: "
# A refusal comes before anything slow: a user waits seconds, not a trial.
REFUSAL_SECONDS = 15
# An earlier search's traces, written before each case: a refusal must leave them as they are.
EARLIER = {
    "mlruns/mlflow.db": b"an earlier store",
    "mlruns/1/0123abcd/artifacts/leaderboard.csv": b"trial,val_accuracy\n00,0.98\n",
    "tuning/mnist-cnn/nnlab.json": b'{"search_id": "earlier"}',
    "tuning/bad-dfn/trial_00/trial.json": b"{}",
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`: relative path -> its bytes (None for a folder)."""
    return {path.relative_to(folder).as_posix(): None if path.is_dir() else path.read_bytes()
            for path in sorted(Path(folder).rglob("*"))}


def write_files(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


def assert_refused(capsys, code, workdir, message, before: dict | None = None) -> str:
    """The rule, after the command ran: exit code 2, one line on stderr holding `message`, no
    traceback, and the working folder as `before` (its snapshot); without one, neither mlruns/
    nor tuning/ exists. Returns the line."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith(PREFIX), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err + captured.out
    if before is None:
        assert not (Path(workdir) / "mlruns").exists() and not (Path(workdir) / "tuning").exists()
    else:
        after = snapshot(workdir)
        changed = sorted(path for path in before.keys() | after.keys() if before.get(path, ...) != after.get(path, ...))
        assert not changed, f"created, changed or removed: {changed}"
    return lines[0]


def refuse(capsys, workdir, message, argv: list[str]) -> str:
    """Run `python -m nnlab.search ARGV` in this process over the working folder and assert the
    rule (an argparse refusal's SystemExit counts as its exit code), in REFUSAL_SECONDS."""
    before = snapshot(workdir)
    started = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    line = assert_refused(capsys, code, workdir, message, before)
    assert time.monotonic() - started < REFUSAL_SECONDS
    return line


def toml(text: str, message: str, *flags: str, model: str = "") -> tuple:
    """A case of an experiment file `bad.toml` (with `model = ...` first where given), run with `flags`."""
    head = f'model = "{model}"\n' if model else ""
    return ["bad.toml", "--data-dir", "{idx}", *flags], message, {"bad.toml": head + text}


TABLE = "x,y,z\n" + "".join(f"{index},,{index % 3}\n" for index in range(20))  # y: empty in every row

# id -> (argv, part of the one line, files written first). "{idx}": a small real MNIST folder.
CASES = {
    # Experiment files.
    "unknown-experiment": (["nope"], "unknown experiment 'nope'; known: breast_cancer, cifar10, co2, diabetes, digits, "
                           "fashion_mnist, mnist, wine", {}),
    "experiment-a-folder": (["exp.toml"], "experiment file exp.toml is a folder, not a TOML file", {"exp.toml/a.toml": ""}),
    # A table or an image folder named where its experiment file goes: the file to write.
    "experiment-a-table": (["sales.csv"], "unknown experiment 'sales.csv', a table: an experiment file names it and "
                           'the column to predict, e.g. sales.toml holding [data] csv = "sales.csv" and target = '
                           '"COLUMN" (README: Your own data); known: breast_cancer,', {"sales.csv": TABLE}),
    "experiment-a-table-in-a-folder": (["data/sales.csv"], "data/sales.csv is a table, not an experiment file: an "
                                       "experiment file names it and the column to predict, e.g. sales.toml holding "
                                       '[data] csv = "data/sales.csv"', {"data/sales.csv": TABLE}),
    "experiment-an-image-folder": (["shapes"], "unknown experiment 'shapes', a folder: an image folder is named in an "
                                   'experiment file, e.g. shapes.toml holding [data] images = "shapes/"',
                                   {"shapes/circle/a.png": ""}),
    "unknown-dataset": toml('dataset = "cifar"\n', "unknown dataset 'cifar'; known: breast_cancer, cifar10, co2, csv, "
                            "diabetes, digits, fashion_mnist, images, mnist, wine"),
    "unknown-model": toml('model = "vae"\n', "unknown model 'vae'; known: cnn, dfn, gan, gru, linear, lstm, rnn"),
    "gan-not-mnist": toml('dataset = "digits"\nmodel = "gan"\n',
                          "model gan is scored by fid_mnist, which judges MNIST digits: dataset mnist, not digits"),
    "gan-ensemble": toml("ensemble = 3\n", "ensemble = 3: an average of generators' images is no generator's",
                         model="gan"),
    "unknown-tuner": toml('tuner = "annealing"\n', "unknown tuner 'annealing'; known: bayesian, grid, hyperband, random"),
    "not-toml": toml("epochs = \n", "bad.toml: not valid TOML"),
    "unknown-key": toml("epochz = 3\n", "bad.toml: unknown key 'epochz'; known keys: name, dataset"),
    # The keys are listed between (unknown-key checks the start); a new key must not break this case.
    "hyperparameter-at-top": toml("learning_rate = 0.1\n", "; a hyperparameter to fix or search goes in the [space] table"),
    "wrong-type": toml('epochs = "3"\n', "bad.toml: epochs = '3' must be an integer"),
    # A flag elsewhere on the line is no part of a mistake in the file.
    "epochs-0": toml("epochs = 0\n", "error: bad.toml: epochs = 0 must be at least 1"),
    "name-dots": toml('name = "../elsewhere"\n', "name '../elsewhere' must be letters, digits"),
    "name-slash": toml('name = "a/b"\n', "name 'a/b' must be letters, digits"),
    "time-budget": toml('time_budget = "soon"\n', "time_budget = 'soon' is not a duration (examples: 900, 15m, 1h, 1h30m)"),
    "trial-timeout": toml("trial_timeout = -5\n", "trial_timeout = -5 must be longer than 0 seconds"),
    "keep-checkpoints": toml("keep_checkpoints = 0\n", "keep_checkpoints = 0 must be at least 1"),
    "refit-repeats": toml("refit_repeats = 0\n", "refit_repeats = 0 must be at least 1"),
    "linear-member-images": toml("linear_member = true\n", "linear_member = true: the linear member is fit on a "
                                 "table's columns; mnist is image data"),
    # [space]: its shape, then what the builders declare, then their legal limits.
    "space-order": toml("[space]\nlearning_rate = [0.1, 0.001]\n",
                        "space.learning_rate = [0.1, 0.001]: the range's minimum 0.1 exceeds its maximum 0.001"),
    "space-kinds": toml("[space]\ndropout = [0.1, 'x']\n", "space.dropout = [0.1, 'x'] mixes kinds of values"),
    "space-unknown": toml("[space]\nneurons = [32, 64]\n",
                          "space.neurons: the model declares no such hyperparameter; known: activation, augment_shift"),
    "space-choice": toml("[space]\nactivation = 'gelu'\n",
                         "space.activation = 'gelu': 'gelu' is not one of relu, tanh, sigmoid"),
    "space-whole": toml("[space]\nconv_blocks = 2.5\n", "space.conv_blocks = 2.5: conv_blocks takes whole numbers"),
    "space-log": toml("[space]\nlearning_rate = [0, 0.1]\n", "learning_rate must be in (0, 1]"),
    "space-learning-rate": toml("[space]\nlearning_rate = [5.0, 50.0]\n",
                                "bad.toml: space.learning_rate = [5.0, 50.0]: learning_rate must be in (0, 1]"),
    "space-dropout": toml("[space]\ndropout = [0.5, 3.0]\n", "space.dropout = [0.5, 3.0]: dropout must be in [0, 1)"),
    "space-hidden-layers": toml("[space]\nhidden_layers = 99\n", "space.hidden_layers = 99: hidden_layers must be in "
                                "[1, 4] (the model declares hyperparameters for 4 layers at most)", model="dfn"),
    "space-units": toml("[space]\nunits_1 = [0, 64]\n", "space.units_1 = [0, 64]: units_1 must be at least 1", model="dfn"),
    "space-conv-blocks": toml("[space]\nconv_blocks = [2, 4]\n", "conv_blocks must be in [1, 3]"),
    "space-filters": toml("[space]\nfilters_2 = 0\n", "space.filters_2 = 0: filters_2 must be at least 1"),
    "space-dense-units": toml("[space]\ndense_units = [-64, 64]\n", "dense_units must be at least 0"),
    "space-weight-decay": toml("[space]\nweight_decay = [-0.1, 0.0]\n", "weight_decay must be at least 0"),
    "space-batch-size": toml("[space]\nbatch_size = [0, 64]\n", "space.batch_size = [0, 64]: batch_size must be at least 1"),
    "space-recurrent-layers": toml("[space]\nrecurrent_layers = 5\n", "recurrent_layers must be in [1, 3]", model="lstm"),
    "space-recurrent-dropout": toml("[space]\nrecurrent_dropout = 1.0\n", "recurrent_dropout must be in [0, 1)",
                                    model="gru"),
    "space-gan-dropout": toml("[space]\ndiscriminator_dropout = [0.2, 1.5]\n",
                              "discriminator_dropout must be in [0, 1)", model="gan"),
    # A CSV table.
    "csv-empty-target": (["bad.toml"], "table.csv: target column 'y' is empty in every row; there is nothing to learn from",
                         {"table.csv": TABLE, "bad.toml": '[data]\ncsv = "table.csv"\ntarget = "y"\n'}),
    "csv-folder": (["bad.toml"], "CSV file tables is a folder, not a file: data.csv names the CSV file itself",
                   {"tables/table.csv": TABLE, "bad.toml": '[data]\ncsv = "tables"\ntarget = "z"\n'}),
    # The file's own paths are read from its folder, not the current one.
    "csv-beside-the-file": (["experiments/demand.toml"], "CSV file experiments/missing.csv does not exist",
                            {"experiments/demand.toml": '[data]\ncsv = "missing.csv"\ntarget = "y"\n'}),
    "images-beside-the-file": (["experiments/shapes.toml"], "image folder experiments/shapes/ does not exist",
                               {"experiments/shapes.toml": '[data]\nimages = "shapes/"\n'}),
    "data-dir-beside-the-file": (["experiments/digits.toml"], "data directory experiments/idx does not exist",
                                 {"experiments/digits.toml": 'dataset = "mnist"\ndata_dir = "idx"\n'}),
    # Flags: argparse's own, then those only the settings can judge, each named as typed.
    "flag-model": (["mnist", "--model", "vae"], "argument --model: invalid choice: 'vae' (choose from 'cnn', 'dfn', "
                   "'linear', 'rnn', 'lstm', 'gru', 'gan')", {}),
    "flag-duration": (["mnist", "--time-budget", "15 minutes"], "argument --time-budget: '15 minutes' is not a duration", {}),
    "flag-zero-budget": (["mnist", "--time-budget", "0"], "argument --time-budget: '0' must be longer than 0 seconds", {}),
    "flag-max-trials": (["mnist", "--max-trials", "0"], "argument --max-trials: '0' must be at least 1", {}),
    "flag-ensemble": (["mnist", "--ensemble", "-1"], "error: --ensemble -1 must be 0 or more", {}),
    "flag-ensemble-gan": (["mnist", "--model", "gan", "--ensemble", "2"],
                          "error: --ensemble 2: an average of generators' images is no generator's", {}),
    "flag-model-table": (["wine", "--model", "cnn"], "error: --model cnn cannot take wine's table data; families that "
                         "can: dfn, linear", {}),
    "flag-mixed-precision": (["bad.toml", "--mixed-precision"], "error: --mixed-precision: model gan trains in float32",
                             {"bad.toml": 'model = "gan"\n'}),
    # Data folders.
    "data-dir-missing": (["mnist", "--data-dir", "no/such/dir"], "data directory no/such/dir does not exist", {}),
    "data-dir-a-file": (["mnist", "--data-dir", "notes.txt"], "data directory notes.txt is a file, not a folder",
                        {"notes.txt": "not MNIST"}),
}


@pytest.fixture
def earlier(workdir):
    """The working folder with an earlier search's traces in mlruns/ and tuning/."""
    write_files(workdir, EARLIER)
    return workdir


@pytest.mark.parametrize("case", CASES)
def test_mistakes_are_refused_in_one_line_and_change_nothing(earlier, capsys, idx_dir, case):
    argv, message, files = CASES[case]
    write_files(earlier, files)
    refuse(capsys, earlier, message, [argument.format(idx=idx_dir) for argument in argv])


@pytest.mark.parametrize("kind", BROKEN_MNIST)
def test_data_directory_mistakes(earlier, capsys, mnist_subset, kind):
    message = write_broken_mnist(earlier / "data", kind, "train", *mnist_subset)
    refuse(capsys, earlier, message, ["mnist", "--data-dir", str(earlier / "data")])


def test_nothing_is_created_where_nothing_was(workdir, capsys, idx_dir):
    # The same rule in an empty folder: no mlruns/ or tuning/ appears, not even empty ones.
    (workdir / "bad.toml").write_text('model = "dfn"\n[space]\nhidden_layers = 99\n')
    assert_refused(capsys, main(["bad.toml", "--data-dir", str(idx_dir)]), workdir, "hidden_layers must be in [1, 4]")


def test_a_search_already_running_is_not_run_twice(earlier, capsys, idx_dir):
    from nnlab.state import search_lock

    with search_lock(earlier / "tuning" / "mnist-cnn"):
        refuse(capsys, earlier, "search mnist-cnn is already running (process ", ["mnist", "--data-dir", str(idx_dir)])


def test_a_process_gets_no_traceback_either(earlier, idx_dir):
    # The same path through a real interpreter: what a user sees in a shell.
    (earlier / "bad.toml").write_text("[space]\nunits_9 = [1, 2]\n")
    before = snapshot(earlier)
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "bad.toml", "--data-dir", str(idx_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # TensorFlow's own start-up lines (absl, CUDA probing) may precede it; nnlab says one line.
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("nnlab.search:")]
    assert line.startswith(f"{PREFIX}bad.toml: space.units_9: the model declares no such hyperparameter; known: "
                           "activation, augment_shift, batch_norm, batch_size, conv_blocks, convs_per_block, "
                           "dense_units, dropout, filters_0, filters_1, filters_2, learning_rate")
    assert snapshot(earlier) == before


# ---------------------------------------------------------------------------------------------
# Issue 26, the resource, server and scale-out rows (tests/test_resources.py holds the process
# lifetime and resume ones): each refused before anything starts, in one line naming the flag as
# typed, exit code 2, within 15 s, an earlier search's tuning/ and mlruns/ exactly as they were
# (--fresh included).


def _files_under(folder) -> dict:
    """Every path under `folder` with its bytes (None for a folder)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes() for path in folder.rglob("*")}


def _earlier_search(folder, store_is_a_file: bool = False) -> None:
    """An earlier search's traces: its tuner state with a trial, its lock, and an MLflow store."""
    state = folder / "tuning" / "mnist-dfn"
    (state / "trial_00").mkdir(parents=True)
    (state / "nnlab.json").write_text('{"search_id": "earlier", "settings": {}}')
    (state / "trial_00" / "trial.json").write_text('{"trial_id": "00", "status": "COMPLETED"}')
    (folder / "tuning" / "mnist-dfn.lock").write_text("")
    if store_is_a_file:  # where the default store's folder must be
        (folder / "mlruns").write_text("not a folder")
    else:
        (folder / "mlruns").mkdir()
        (folder / "mlruns" / "mlflow.db").write_bytes(b"an earlier store")


RESOURCE_MISTAKES = [
    (["--workers", "999"], "--workers 999: this machine takes at most "),
    (["--workers", "-1"], "--workers -1: must be 0 or more"),
    (["--worker-trials", "-2"], "--worker-trials -2: must be 0 or more"),
    (["--fresh", "--tracking-uri", "http://127.0.0.1:{port}"],
     "--tracking-uri http://127.0.0.1:{port}: no MLflow server answers there within 5 s (Connection refused); "
     "start it first"),
    (["--oracle", "nohost.invalid:1"], "--oracle 'nohost.invalid:1': host 'nohost.invalid' does not resolve"),
    (["--oracle", "192.0.2.1:5000"], "--oracle '192.0.2.1:5000': cannot listen there (Cannot assign requested address)"),
    (["--fresh"], "the MLflow store sqlite:///mlruns/mlflow.db: mlruns is a file where a folder of mlruns/mlflow.db "
                  "must be: move it away, or give --tracking-uri another store"),
    (["--gpus", "7"], "--gpus 7: TensorFlow finds no GPU on this machine; leave --gpus out to train on the CPU"),
]


@pytest.mark.parametrize(("arguments", "message"), RESOURCE_MISTAKES,
                         ids=[" ".join(arguments) for arguments, _message in RESOURCE_MISTAKES])
def test_resource_and_server_mistakes_change_nothing(workdir, capsys, free_port, arguments, message):
    import time

    if arguments == ["--gpus", "7"]:
        from nnlab.accelerators import start_backend

        if len(start_backend()) > 7:
            pytest.skip("this machine has a GPU 7")
    _earlier_search(workdir, store_is_a_file=message.startswith("the MLflow store"))
    before = _files_under(workdir)
    started = time.monotonic()
    code = main(["mnist", "--model", "dfn", *[argument.format(port=free_port) for argument in arguments]])
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("nnlab.search: error: " + message.format(port=free_port)), line
    assert "Traceback" not in captured.err and seconds < 15
    assert _files_under(workdir) == before


@pytest.fixture
def not_mlflow(free_port):
    """A web server that answers every request 404, as no MLflow tracking server does."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *_args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{free_port}"
    server.shutdown()
    server.server_close()


READERS = {
    "predict": ("nnlab.predict", ["mnist-cnn", "digit.png"]),
    "report": ("nnlab.report", ["mnist"]),
    "champions": ("nnlab.report", ["mnist", "--champions"]),
    "ui": ("nnlab.ui", []),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_command_that_reads_the_store_says_at_once_that_no_mlflow_server_answers(workdir, capsys, not_mlflow,
                                                                                   reader):
    """MLflow retries each request to a server for minutes; the commands that only read the store
    ask it once first, as the search does. (Before: predict, report and finetune waited minutes,
    ui printed mlflow ui's exception.)"""
    import importlib

    module, arguments = READERS[reader]
    started = time.monotonic()
    code = importlib.import_module(module).main([*arguments, "--tracking-uri", not_mlflow])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured
    assert captured.err.strip() == (f"{module}: error: {not_mlflow}: a server answers there, but not as an MLflow "
                                    "tracking server (HTTP 404 for /api/2.0/mlflow/experiments/search); start it "
                                    "first, or give --tracking-uri the address of one that runs")
    assert time.monotonic() - started < 10


FOLDER_STORE = ("MLflow {version} opens a folder store (a path or a file: URI) only where MLFLOW_ALLOW_FILE_STORE=true "
                "is set: set it to use the folder")


@pytest.mark.parametrize("reader", [*READERS, "search", "finetune"])
@pytest.mark.parametrize("store", ["file:./old-runs", "mlruns"])
def test_a_folder_store_mlflow_will_not_open_is_one_line(workdir, capsys, monkeypatch, reader, store):
    """MLflow 3.17 refuses its file store (a path, a file: URI, as older tutorials set) unless
    MLFLOW_ALLOW_FILE_STORE is set: every command was that MlflowException's traceback. `mlruns`,
    the folder of nnlab's own store, is what a user types for it."""
    import importlib

    import mlflow

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    if store == "mlruns":
        _earlier_search(workdir, store_is_a_file=False)
    before = _files_under(workdir)
    module, arguments = READERS.get(reader) or (f"nnlab.{reader}", ["mnist", "--max-trials", "1"] if reader == "search"
                                                 else ["mnist-cnn", "digits"])
    code = importlib.import_module(module).main([*arguments, "--tracking-uri", store])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured
    named = "--tracking-uri " if reader == "search" else ""
    problem = (FOLDER_STORE.format(version=mlflow.__version__) if store.startswith("file:") else
               "a folder holding an SQLite store: name the file, sqlite:///mlruns/mlflow.db")
    advice = ", or give --tracking-uri another store" if reader == "search" else ""
    assert captured.err.strip() == f"{module}: error: {named}{store}: {problem}{advice}"
    assert _files_under(workdir) == before


def test_a_folder_store_is_used_where_mlflow_is_told_to_open_it(workdir, monkeypatch):
    """With MLFLOW_ALLOW_FILE_STORE=true, MLflow's own opt-out, a search tracks in the folder."""
    import nnlab

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    result = nnlab.search("mnist", model="linear", max_trials=1, epochs=1, tracking_uri="file:./old-runs",
                          verbose=False)
    assert result.champion_version == "1" and (workdir / "old-runs" / "models").is_dir()


def test_a_fine_tune_from_python_says_so_too_in_its_own_words(workdir, free_port):
    import nnlab

    started = time.monotonic()
    with pytest.raises(nnlab.NnlabError) as raised:  # nothing listens on the port: asked again for 5 s
        nnlab.finetune("mnist-cnn", "digits", tracking_uri=f"http://127.0.0.1:{free_port}", verbose=False)
    assert str(raised.value) == (f"http://127.0.0.1:{free_port}: no MLflow server answers there within 5 s (Connection "
                                 "refused); start it first, or give tracking_uri the address of one that runs")
    assert time.monotonic() - started < 30
    assert not (workdir / "tuning").exists() and not (workdir / "mlruns").exists()
