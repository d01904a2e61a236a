"""Reading the store back: a search's run found again (by its search id, or by the oracle its
chief serves), its trial runs, the trial leaderboard, an experiment's searches and champions,
the experiments that hold runs, and the MLflow UI's page of one."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nnlab.errors import TrackingError
from nnlab.formats import counted
from nnlab.tasks import get_task
from nnlab.tracking.store import no_store, reading_client, resolve_tracking_uri
from nnlab.tracking.tags import (
    CHAMPION_ALIAS,
    CHAMPION_TRIAL_TAG,
    ORACLE_PORT_TAG,
    SEARCH_ID_TAG,
    TASK_TAG,
    TIE_BREAK_METRIC,
    TRIAL_ID_TAG,
)


def search_run(client: MlflowClient, experiment_id: str, search_id: str):
    """The parent run of search `search_id`, or None."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{SEARCH_ID_TAG}` = '{search_id}'", max_results=1
    )
    return found[0] if found else None


def running_search(client: MlflowClient, experiment_id: str, run_name: str, oracle_port: int):
    """The RUNNING search `run_name` whose oracle serves on `oracle_port`, the newest, or None."""
    found = client.search_runs(
        [experiment_id],
        filter_string=(f"attributes.status = 'RUNNING' and tags.mlflow.runName = '{run_name}' "
                       f"and tags.`{ORACLE_PORT_TAG}` = '{oracle_port}'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def trial_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str | None = None):
    """The trial runs nested under a search's run, those of `trial_id` only when given."""
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    if trial_id is not None:
        query += f" and tags.`{TRIAL_ID_TAG}` = '{trial_id}'"
    return client.search_runs([experiment_id], filter_string=query, max_results=10_000)


def trial_leaderboard(tracking_uri: str, experiment_id: str, parent_run_id: str, task) -> pd.DataFrame:
    """A search's trial runs, best first as the task ranks them (nnlab.tasks): trial, status, best
    objective (and its spread over a trial's fits, where it had several), best epoch, size, time,
    then the hyperparameters as numbers where they are numbers. Hyperband's bookkeeping params
    (tuner/bracket, ...) are left out but for tuner/epochs, the epochs the trial was given."""
    runs = trial_runs(MlflowClient(tracking_uri), experiment_id, parent_run_id)
    if not runs:
        return pd.DataFrame()
    best = task.best_key
    table = pd.DataFrame(
        {
            "trial": [run.data.tags.get(TRIAL_ID_TAG) for run in runs],
            "status": [run.info.status for run in runs],
            best: [run.data.metrics.get(best) for run in runs],
            "best_epoch": [run.data.metrics.get("best_epoch") for run in runs],
            "param_count": [run.data.metrics.get("param_count") for run in runs],
            "train_seconds": [run.data.metrics.get("train_seconds") for run in runs],
        }
    )
    spread = [run.data.metrics.get(f"{best}_std") for run in runs]
    if any(value is not None for value in spread):  # trials of several fits: the spread beside their mean
        table.insert(3, f"{best}_std", pd.to_numeric(pd.Series(spread, dtype=object)).astype(float))
    for column in (best, "train_seconds"):
        table[column] = table[column].astype(float)
    for column in ("best_epoch", "param_count"):  # MLflow keeps every metric as a float
        table[column] = pd.to_numeric(table[column]).round().astype("Int64")
    params = pd.DataFrame([run.data.params for run in runs])
    bookkeeping = [name for name in params.columns if name.startswith("tuner/") and name != "tuner/epochs"]
    params = params.drop(columns=bookkeeping)
    for column in params.columns:  # params come back as text: numbers become numbers again
        try:
            params[column] = pd.to_numeric(params[column])
        except (ValueError, TypeError):
            pass
    table = pd.concat([table, params[sorted(params.columns)]], axis=1)
    order = pd.to_numeric(table["trial"], errors="coerce")
    # Ties rank by the validation loss at the best epoch, as the oracle ranks them (oracles.RanksTrials).
    tie_break = [run.data.metrics.get(TIE_BREAK_METRIC, math.inf) for run in runs]
    table = table.assign(_tie=tie_break, _order=order).sort_values(
        [best, "_tie", "_order"], ascending=[not task.higher_is_better, True, True], na_position="last")
    return table.drop(columns=["_tie", "_order"]).reset_index(drop=True)


def runs_counted(leaderboard: pd.DataFrame) -> str:
    """A leaderboard's rows in words: "4 trials", or "5 runs of 4 trials" where a trial stopped
    mid-way (Ctrl-C, its worker lost) ran again, a row per run."""
    trials = leaderboard["trial"].nunique() if len(leaderboard) else 0
    if trials == len(leaderboard):
        return counted(trials, "trial")
    return f"{len(leaderboard)} runs of {counted(trials, 'trial')}"


@dataclass(frozen=True)
class SearchRun:
    """A search's parent run, as `nnlab.report` lists it."""

    run_id: str
    experiment_id: str
    model: str | None
    status: str
    start_time: int  # milliseconds since the epoch
    task: str | None = None  # None: tracked before tasks were tagged, classification


def find_searches(experiment_name: str, tracking_uri: str | None = None, model: str | None = None) -> list[SearchRun]:
    """The searches of an experiment, newest first, those of `model` only when given. An
    experiment the store does not hold is a TrackingError that lists the ones it does."""
    uri = resolve_tracking_uri(tracking_uri)
    missing = no_store(uri, experiment=experiment_name)
    if missing:
        raise TrackingError(missing)
    client = reading_client(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        known = sorted(found.name for found in client.search_experiments() if found.name != "Default")
        raise TrackingError(f"the store {uri} holds no experiment {experiment_name!r}; "
                            f"known: {', '.join(known) if known else 'none yet'}")
    query = f"tags.`{SEARCH_ID_TAG}` != ''"
    if model:
        query += f" and tags.`nnlab.model` = '{model}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])
    return [SearchRun(run.info.run_id, experiment.experiment_id, run.data.tags.get("nnlab.model"),
                      run.info.status, run.info.start_time, run.data.tags.get(TASK_TAG)) for run in runs]


def champions_table(experiment_name: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per registered model of the experiment (`<experiment>-<family>`, a fine-tune's
    `<experiment>-from-...`): its champion's version and family, its task's headline test metrics
    (nnlab.tasks: test_accuracy; test_rmse, test_mae; ...), each a column named as the metric and
    empty in the rows of another task, its parameter count (an average champion's members
    together) and its search's wall time; best first within each task, the first task's rows first.
    Empty when none is registered."""
    uri = resolve_tracking_uri(tracking_uri)
    client = reading_client(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    rows = []
    for registered in client.search_registered_models(filter_string=f"name LIKE '{experiment_name}-%'"):
        try:
            version = client.get_model_version_by_alias(registered.name, CHAMPION_ALIAS)
        except MlflowException:  # registered, but no version holds the alias
            continue
        search = client.get_run(version.run_id)
        if experiment is None or search.info.experiment_id != experiment.experiment_id:
            continue  # another experiment's whose name begins alike: mnist-smoke-cnn is not mnist's
        task = get_task(search.data.tags.get(TASK_TAG) or "classification")
        trials = (search.data.tags.get(CHAMPION_TRIAL_TAG) or "").split(",")
        champion_runs = [
            run for run in trial_runs(client, search.info.experiment_id, search.info.run_id)
            if run.info.status == "FINISHED" and run.data.tags.get(TRIAL_ID_TAG) in trials]
        counts = [run.data.metrics.get("param_count") for run in champion_runs]
        end = search.info.end_time or search.info.start_time
        rows.append({
            "model": registered.name,
            "family": search.data.tags.get("nnlab.model"),
            "version": int(version.version),
            "_task": task.name,
            **task.headline_metrics(search.data.metrics),
            "param_count": int(sum(counts)) if counts and None not in counts else None,
            "search_minutes": round((end - search.info.start_time) / 60_000, 1),
            "_better": -search.data.metrics.get(task.test_key, float("nan")) if task.higher_is_better
            else search.data.metrics.get(task.test_key, float("nan")),
        })
    if not rows:
        return pd.DataFrame()
    # The metrics' columns in the order their tasks come, before the size and the time.
    columns = list(dict.fromkeys(key for row in rows for key in row))
    last = ["param_count", "search_minutes", "_task", "_better"]
    table = pd.DataFrame(rows)[[key for key in columns if key not in last] + last]
    first_seen = {task: index for index, task in enumerate(dict.fromkeys(table["_task"]))}
    table = table.assign(_task=table["_task"].map(first_seen)).sort_values(["_task", "_better"], na_position="last")
    return table.drop(columns=["_task", "_better"]).reset_index(drop=True)


def runs_page(address: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment. MLflow 3.17's UI opens an experiment on its
    GenAI overview (traces, tokens), empty for nnlab; this address opens the runs directly."""
    return f"{address}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiments_with_runs(tracking_uri: str) -> list[tuple[str, str]]:
    """(name, id) of the store's experiments that hold runs, in the order they were made."""
    client = reading_client(tracking_uri)
    experiments = sorted(client.search_experiments(), key=lambda experiment: int(experiment.experiment_id))
    return [(experiment.name, experiment.experiment_id) for experiment in experiments
            if client.search_runs([experiment.experiment_id], max_results=1)]
