"""The example notebook (examples/own_data_and_model.ipynb) runs top to bottom, as a newcomer would
run it, in a real Jupyter kernel against an MLflow store in a temporary folder (issue 29): its own
arrays, its own builder, a short search, the leaderboard, a figure inline, the champion loaded
back, a fine-tune. Its runs are a command's: nested trials under the search's run, the champions
registered."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from mlflow import MlflowClient
from nbclient import NotebookClient

from test_search import runs_of

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "own_data_and_model.ipynb"
MOST_SECONDS = 180  # the bound on 2 cores


def test_the_example_notebook_runs_top_to_bottom_and_tracks_like_a_command(workdir, tracking_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)  # the kernel inherits it: the notebook names no store
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # kept clean in git
    started = time.monotonic()
    NotebookClient(notebook, timeout=MOST_SECONDS, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()  # raises on any cell's error
    assert time.monotonic() - started < MOST_SECONDS

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs)
    assert "Starting search digits-0-4-small_cnn (random, 4 trials" in text  # progress, as it happened
    assert "<SearchResult digits-0-4-small_cnn version 1" in text
    assert "<SearchResult digits-from-digits-0-4-small_cnn version 1" in text
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the figure, inline
    assert any("text/html" in output.get("data", {}) for output in outputs)  # the leaderboard, a table
    assert "Traceback" not in text and "retracing" not in text

    parents, children = runs_of(tracking_uri, "digits-0-4")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and {child.data.tags["mlflow.parentRunId"] for child in children} == {parents[0].info.run_id}
    client = MlflowClient(tracking_uri)
    for name in ("digits-0-4-small_cnn", "digits-from-digits-0-4-small_cnn"):
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    source = client.get_run(runs_of(tracking_uri, "digits")[0][0].info.run_id).data.tags
    assert source["nnlab.source"] == "digits-0-4-small_cnn"
