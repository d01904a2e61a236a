"""`python -m nnlab.report` and `python -m nnlab.ui` on a real store: the leaderboard as a table,
CSV and Markdown, and every mistake a one-line message with exit code 2."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from nnlab import report, ui

HEADLINE = ["trial", "status", "best_val_accuracy", "best_epoch", "param_count", "train_seconds"]


def run_report(capsys, *argv):
    code = report.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_leaderboard_table_best_first(workdir, capsys, searched_store):
    code, out, _ = run_report(capsys, "mnist", "--tracking-uri", searched_store.tracking_uri)
    assert code == 0
    header, columns, *rows = out.splitlines()
    assert header.startswith(f"mnist-cnn: search run {searched_store.result.parent_run_id} (FINISHED, started ")
    assert header.endswith("3 trials, best first")
    assert columns.split()[:6] == HEADLINE and {"learning_rate", "conv_blocks", "activation"} <= set(columns.split())
    expected = searched_store.result.leaderboard
    assert [row.split()[0] for row in rows] == list(expected["trial"])
    assert [float(row.split()[2]) for row in rows] == pytest.approx(list(expected["best_val_accuracy"]), abs=1e-4)


def test_csv_and_markdown_and_top(workdir, capsys, searched_store):
    expected = searched_store.result.leaderboard
    code, out, _ = run_report(capsys, "mnist", "--tracking-uri", searched_store.tracking_uri, "--format", "csv", "--top", "2")
    assert code == 0
    table = pd.read_csv(io.StringIO(out), dtype={"trial": str})
    assert list(table.columns[:6]) == HEADLINE and len(table) == 2
    pd.testing.assert_series_equal(table["best_val_accuracy"], expected["best_val_accuracy"].head(2), check_dtype=False)
    assert list(table["trial"]) == list(expected["trial"].head(2))
    assert (table["param_count"] > 1000).all() and (table["best_epoch"] >= 1).all()

    code, out, _ = run_report(capsys, "mnist", "--tracking-uri", searched_store.tracking_uri, "--format", "markdown")
    assert code == 0
    header, rule, *rows = out.splitlines()
    assert header.startswith("| trial | status | best_val_accuracy | best_epoch | param_count | train_seconds |")
    assert rule.startswith("| --- | --- | ---: | ---: | ---: | ---: |") and rule.count("|") == header.count("|")
    assert len(rows) == 3 and all(row.startswith("| ") and row.count("|") == header.count("|") for row in rows)
    assert rows[0].split(" | ")[2] == f"{expected['best_val_accuracy'][0]:.4g}"


def test_an_experiment_file_names_the_store_and_the_model(workdir, capsys, searched_store):
    (workdir / "experiments").mkdir()
    (workdir / "experiments" / "digits.toml").write_text(
        f'name = "mnist"\nmodel = "cnn"\ntracking_uri = "{searched_store.tracking_uri}"\n')
    code, out, _ = run_report(capsys, "digits")
    assert code == 0 and out.startswith("mnist-cnn: search run")
    (workdir / "experiments" / "dense.toml").write_text(
        f'name = "mnist"\nmodel = "dfn"\ntracking_uri = "{searched_store.tracking_uri}"\n')
    code, _, err = run_report(capsys, "dense")
    assert code == 2 and err.strip() == (f"nnlab.report: error: experiment mnist holds no search of model dfn in "
                                         f"{searched_store.tracking_uri}")


@pytest.mark.parametrize("argv, message", [
    (["nope"], "the store {uri} holds no experiment 'nope'; known: mnist"),
    (["mnist", "--model", "linear"], "experiment mnist holds no search of model linear in {uri}"),
    (["mnist", "--top", "0"], "argument --top: '0' must be at least 1 (see --help)"),
    (["mnist", "--format", "xml"], "argument --format: invalid choice: 'xml' (choose from 'table', 'csv', 'markdown') (see --help)"),
    (["missing.toml"], "experiment file missing.toml does not exist"),
])
def test_report_mistakes_are_one_line(workdir, capsys, searched_store, argv, message):
    assert exit_code(report.main, [*argv, "--tracking-uri", searched_store.tracking_uri]) == 2
    assert capsys.readouterr().err == f"nnlab.report: error: {message.format(uri=searched_store.tracking_uri)}\n"


def exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse's errors exit from inside
        return exited.code


def test_no_store_is_one_line(workdir, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    code, _, err = run_report(capsys, "mnist", "--tracking-uri", uri)
    assert code == 2 and err == f"nnlab.report: error: no MLflow store at {uri}; run a search first (python -m nnlab.search mnist)\n"
    assert not (tmp_path / "nowhere").exists()  # reading a report creates nothing


def test_the_command_answers_quickly(workdir, searched_store):
    # It loads MLflow and pandas, never TensorFlow: the probe below is the check. The time bound
    # only catches a report gone slow; 3-6 s here, 12 s once in CI on a busy machine's cold cache.
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "nnlab.report", "mnist", "--tracking-uri", searched_store.tracking_uri],
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mnist-cnn: search run") and len(done.stdout.splitlines()) == 2 + 3
    assert seconds < 20
    probe = subprocess.run([sys.executable, "-c", "import sys, nnlab.report, nnlab.tracking; "
                            "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["False", "False"]


def test_ui_mistakes_are_one_line(capsys, tmp_path, searched_store):
    uri = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    assert ui.main(["--tracking-uri", uri]) == 2
    assert capsys.readouterr().err == (f"nnlab.ui: error: no MLflow store at {uri}; run a search first "
                                       "(python -m nnlab.search mnist) or name the store with --tracking-uri\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert ui.main(["--tracking-uri", searched_store.tracking_uri, "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"nnlab.ui: error: port {port} on 127.0.0.1 is in use; choose another with --port\n"
    assert exit_code(ui.main, ["--port", "70000"]) == 2
    assert "argument --port: '70000' is not a TCP port (1 to 65535)" in capsys.readouterr().err


def test_champions_lists_each_registered_family_best_first(workdir, capsys, small_mnist, tracking_uri):
    from mlflow import MlflowClient

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    results = {}
    # families-smoke-linear is registered too, but belongs to another experiment.
    for name, model in (("families", "linear"), ("families", "dfn"), ("families-smoke", "linear")):
        config = ExperimentConfig(name=name, model=model, tuner="random", max_trials=1, epochs=1, final_epochs=0,
                                  tracking_uri=tracking_uri)
        result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lambda _line: None)
        if name == "families":
            results[model] = result
    code, out, err = run_report(capsys, "families", "--champions", "--tracking-uri", tracking_uri, "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    scores = {model: result.test_metrics["test_accuracy"] for model, result in results.items()}
    assert list(table["family"]) == sorted(scores, key=scores.get, reverse=True)  # best first
    assert list(table["test_accuracy"]) == pytest.approx(sorted(scores.values(), reverse=True))
    assert set(table["model"]) == {"families-linear", "families-dfn"} and set(table["version"]) == {1}
    # A column per headline test metric, named as the metric; the others stay on the run.
    assert list(table.columns) == ["model", "family", "version", "test_accuracy", "param_count", "search_minutes"]
    client = MlflowClient(tracking_uri)
    for row in table.itertuples():
        (trial,) = [run for run in client.search_runs([client.get_experiment_by_name("families").experiment_id],
                                                      f"tags.mlflow.parentRunId = '{results[row.family].parent_run_id}'")]
        assert row.param_count == trial.data.metrics["param_count"]  # the champion's own size
        search = client.get_run(results[row.family].parent_run_id)
        assert row.search_minutes == round((search.info.end_time - search.info.start_time) / 60_000, 1)
    code, out, err = run_report(capsys, "families", "--champions", "--tracking-uri", tracking_uri)
    assert code == 0 and err == ""
    heading, columns, *rows = out.splitlines()
    assert columns.split() == list(table.columns) and len(rows) == 2
    assert max(len(line) for line in (columns, *rows)) <= 120
    # No champion registered yet: one line, exit code 2.
    client.create_experiment("empty")
    client.create_run(client.get_experiment_by_name("empty").experiment_id, tags={"nnlab.search_id": "x"})
    code, _out, err = run_report(capsys, "empty", "--champions", "--tracking-uri", tracking_uri)
    assert code == 2 and err == (f"nnlab.report: error: experiment empty has no registered champion in {tracking_uri}; "
                                 "a search registers one (python -m nnlab.search empty)\n")


def test_champions_of_several_tasks_fit_a_terminal():
    from nnlab.formats import render

    # A GAN's three headline metrics beside classifiers' (tasks registered in one experiment: mnist).
    table = pd.DataFrame([
        {"model": "mnist-cnn", "family": "cnn", "version": 3, "test_accuracy": 0.991, "param_count": 422314,
         "search_minutes": 12.5},
        {"model": "mnist-from-digits-cnn", "family": "transfer", "version": 1, "test_accuracy": 0.97,
         "param_count": 22314, "search_minutes": 2.5},
        {"model": "mnist-gan", "family": "gan", "version": 2, "test_fid_mnist": 12.34, "test_confidence": 0.91,
         "test_coverage": 10.0, "param_count": 1422314, "search_minutes": 62.5},
    ], columns=["model", "family", "version", "test_accuracy", "test_fid_mnist", "test_confidence", "test_coverage",
                "param_count", "search_minutes"])  # as champions_table orders them
    assert max(len(line) for line in render(table, "table").splitlines()) > 120
    narrowed = report._narrowed(table)
    assert list(narrowed.columns) == ["model", "family", "version", "test_accuracy", "test_fid_mnist", "param_count",
                                      "search_minutes"]
    assert max(len(line) for line in render(narrowed, "table").splitlines()) <= 120
    assert report._narrowed(narrowed) is narrowed  # what fits stays whole
