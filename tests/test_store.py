"""A new SQLite store starts as a copy of an empty one made once per MLflow version: it must be
exactly the store MLflow would have made, and MLflow must still make it when the copy cannot be."""

from __future__ import annotations

import sqlite3

import mlflow
from mlflow import MlflowClient

from nnlab import tracking


def schema(database) -> tuple[dict, list]:
    """Every table, index and constraint, and the migration revision. (MLflow's own migrations
    list a table's constraints in no fixed order: two stores it makes can differ in that.)"""
    with sqlite3.connect(database) as connection:
        objects = connection.execute("select type, name, sql from sqlite_master").fetchall()
        revision = connection.execute("select version_num from alembic_version").fetchall()
    return {(kind, name): sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
            for kind, name, sql in objects}, revision


def test_a_new_store_is_the_one_mlflow_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    copied = tracking.configure("sqlite:///copied/mlflow.db")
    template = tmp_path / "cache" / "nnlab" / f"mlflow-{mlflow.__version__}-empty.db"
    assert template.is_file() and (tmp_path / "copied" / "mlflow.db").is_file()
    (tmp_path / "made").mkdir()
    made = "sqlite:///made/mlflow.db"  # MLflow makes this one itself
    for uri in (copied, made):
        MlflowClient(uri).search_registered_models()
    assert schema(tmp_path / "copied" / "mlflow.db") == schema(tmp_path / "made" / "mlflow.db")
    # MLflow adds its Default experiment on first opening the copy, where it would have put it.
    default_copied, default_made = (MlflowClient(uri).get_experiment("0") for uri in (copied, made))
    assert (default_copied.name, default_copied.artifact_location) == (default_made.name, default_made.artifact_location)

    # Made once: the next store is another copy of the same template.
    stamp = template.stat().st_mtime_ns
    tracking.configure("sqlite:///second/mlflow.db")
    assert template.stat().st_mtime_ns == stamp and (tmp_path / "second" / "mlflow.db").is_file()
    # An existing store is never replaced.
    before = (tmp_path / "made" / "mlflow.db").read_bytes()
    tracking.configure(made)
    assert (tmp_path / "made" / "mlflow.db").read_bytes() == before


def test_without_a_usable_cache_mlflow_makes_the_store(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    uri = tracking.configure(f"sqlite:///{tmp_path}/store/mlflow.db")
    assert not (tmp_path / "store" / "mlflow.db").exists()  # left to MLflow
    assert not list((tmp_path / "store").iterdir())  # and no partial copy left behind
    client = MlflowClient(uri)
    client.create_experiment("made-by-mlflow")
    assert client.get_experiment_by_name("made-by-mlflow") is not None
