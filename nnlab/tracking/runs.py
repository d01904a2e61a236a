"""Writing a search's runs: its parent run (opened, reopened on resume, closed, found by its
workers), one nested run per trial, the data set's splits as dataset inputs, and what is logged
on them (metrics, tables, figures). The champion's registration and the read-back queries are
registry.py's and queries.py's; SearchTracker hands them this search's client and run."""

from __future__ import annotations

import atexit
import contextlib
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.exceptions import MlflowException
from mlflow.utils.autologging_utils import disable_autologging

from nnlab.tracking import queries, registry
from nnlab.tracking.registry import ChampionRecord, HolderScore, RegisteredVersion, test_label
from nnlab.tracking.store import connect, resolve_tracking_uri
from nnlab.tracking.tags import ORACLE_PORT_TAG, SEARCH_ID_TAG, TRIAL_ID_TAG

# The MLflow input contexts of a data set's splits, in the order of Dataset's fields.
DATA_CONTEXTS = ("training", "validation", "test")
# The failure tags of a trial's run ended KILLED: the user stopped the search; a worker's call to
# its chief's oracle failed (the chief has gone; "(how it failed); the trial runs again on
# resume" follows); its process left it open when it exited (_kill_open_trial_runs).
STOPPED_REASON = "stopped by Ctrl-C or SIGTERM; the trial runs again on resume"
LOST_REASON = "its worker lost the chief's oracle"
EXIT_REASON = "its process ended before the trial did; the trial runs again on resume"


def autologging_off():
    """Within: MLflow's autologging (`mlflow.autolog()` in a user's notebook; some platforms turn
    it on) does not hook the search's fits. nnlab logs each trial's run itself; autologging's
    keras hook would log into the same runs, and failed there with a warning on every fit
    ("Changing param values is not allowed ... batch_size"). MLflow's own switch, which
    mlflow.evaluate uses the same way; the user's settings hold again after."""
    return disable_autologging()


def _kill_open_trial_runs() -> None:
    """At a process's exit, a trial's run still open never finished: KILLED, as KerasTuner reruns
    it, where MLflow's own exit handler (run after this one) would end it FINISHED. A backstop:
    nnlab.tuner ends every trial's run it can (a worker whose chief was killed once left one open,
    read FINISHED after 2 of its 40 epochs). The search's own run is left: nnlab ends it, with its
    status, before exit."""
    with contextlib.suppress(Exception):  # the store may be gone with the process's chief
        while _trial_run_open():
            mlflow.set_tag("nnlab.failure", EXIT_REASON)
            mlflow.end_run("KILLED")


def _trial_run_open() -> bool:
    """This process's active MLflow run is a trial's."""
    run = mlflow.active_run()
    return run is not None and TRIAL_ID_TAG in run.data.tags


atexit.register(_kill_open_trial_runs)  # after mlflow's own (imported above), so it runs first


def data_inputs(dataset) -> dict:
    """The data set's splits as MLflow datasets (name, digest, source, schema), by context: a
    table's rows with their target column, arrays of images or windows with their targets."""
    located = dataset.uri is not None and Path(dataset.uri).exists()
    inputs = {}
    for context, (features, targets) in zip(DATA_CONTEXTS, (dataset.train, dataset.validation, dataset.test)):
        name = f"{dataset.name}-{context}"
        # A file or folder is a local source; a package's data (sklearn, keras.datasets) is named
        # in a code source's tags. MLflow warns that a path resolves "in multiple ways" (to the
        # same class listed twice): it is one.
        source = Path(dataset.uri).resolve().as_uri() if located else CodeDatasetSource(
            {"nnlab.data_uri": dataset.uri or dataset.name, "nnlab.data_source": dataset.source[:500]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if isinstance(features, pd.DataFrame):
                rows = features.assign(**{dataset.target: np.asarray(targets).reshape(len(features), -1)[:, 0]})
                inputs[context] = mlflow.data.from_pandas(rows, source=source, targets=dataset.target, name=name)
            else:
                inputs[context] = mlflow.data.from_numpy(np.asarray(features), source=source,
                                                         targets=np.asarray(targets), name=name)
    return inputs


class SearchTracker:
    """One search's MLflow runs: the parent, the trial being run, the champion."""

    def __init__(self, experiment_name: str, tracking_uri: str | None = None, dataset=None):
        # Nothing touches the store before open_search: a search refused early leaves no trace.
        self.experiment_name = experiment_name
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        # The splits as MLflow dataset inputs: the search's run logs all three, each trial's run
        # what it trained and validated on.
        self.data_inputs = data_inputs(dataset) if dataset is not None else {}

    # ------------------------------------------------------------ the parent run

    def _connect(self) -> None:
        if self.client is None:
            self.client, self.experiment_id = connect(self.tracking_uri, self.experiment_name)

    def close_abandoned(self, search_id: str) -> int:
        """Mark KILLED what a killed process left RUNNING of search `search_id`: its parent run and
        its trial runs. Only for a search no process is running (search.py holds its lock)."""
        self._connect()
        parent = queries.search_run(self.client, self.experiment_id, search_id)
        if parent is None:
            return 0
        runs = [parent, *queries.trial_runs(self.client, self.experiment_id, parent.info.run_id)]
        stale = [run for run in runs if run.info.status == "RUNNING"]
        for run in stale:
            self.client.set_tag(run.info.run_id, "nnlab.failure", "its process ended without closing the run (killed)")
            self.client.set_terminated(run.info.run_id, "KILLED")
        return len(stale)

    def open_search(self, search_id: str, run_name: str, tags: dict, params: dict) -> bool:
        """Start the parent run, or reopen the one of this search id. True when reopened."""
        self._connect()
        existing = queries.search_run(self.client, self.experiment_id, search_id)
        if existing:
            self.close_abandoned(search_id)
            run = mlflow.start_run(run_id=existing.info.run_id)
        else:
            run = mlflow.start_run(
                experiment_id=self.experiment_id, run_name=run_name, tags={**tags, SEARCH_ID_TAG: search_id}
            )
            mlflow.log_params(params)
            self._log_inputs(DATA_CONTEXTS)
        self.parent_run_id = run.info.run_id
        return bool(existing)

    def _log_inputs(self, contexts) -> None:
        """The splits of `contexts` as dataset inputs of the active run."""
        for context in contexts:
            if context in self.data_inputs:
                # MLflow infers the schema here and hints that an integer column (a class label)
                # cannot hold a missing value: nnlab's never does.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        mlflow.log_input(self.data_inputs[context], context=context)
                    except MlflowException as error:
                        # Two searches of one experiment started together log the same split:
                        # MLflow looks the dataset up, then inserts it, and the slower insert
                        # breaks the table's unique key. It exists now: linking it again works.
                        if "IntegrityError" not in str(error) and "unique constraint" not in str(error).lower():
                            raise
                        mlflow.log_input(self.data_inputs[context], context=context)

    def serve_oracle(self, port: int) -> None:
        """Tag the search's run with the port its oracle serves workers on."""
        self.client.set_tag(self.parent_run_id, ORACLE_PORT_TAG, str(port))

    def attach(self, run_name: str, oracle_port: int) -> bool:
        """In a worker: nest trials under the running search `run_name` whose oracle serves on
        `oracle_port`; False when there is none (the chief has not opened it, or has ended)."""
        self._connect()
        found = queries.running_search(self.client, self.experiment_id, run_name, oracle_port)
        if found is None:
            return False
        self.parent_run_id = found.info.run_id
        return True

    def close_search(self, status: str = "FINISHED", tags: dict | None = None) -> None:
        if self.parent_run_id is not None and tags:
            for key, value in tags.items():
                self.client.set_tag(self.parent_run_id, key, str(value)[:5000])
        while mlflow.active_run() is not None:
            mlflow.end_run(status)

    def search_tag(self, key: str) -> str | None:
        return self.client.get_run(self.parent_run_id).data.tags.get(key)

    def search_metrics(self) -> dict:
        return self.client.get_run(self.parent_run_id).data.metrics

    # ------------------------------------------------------------ trial runs

    def trial_best_epochs(self, trial_ids: list[str]) -> dict[str, int]:
        """trial id -> the epoch its finished run was best at (best_epoch: the mean over its folds
        where it had several fits), for the trials that have one."""
        epochs = {}
        for trial_id in trial_ids:
            finished = [run for run in self._trial_runs(trial_id) if run.info.status == "FINISHED"
                        and "best_epoch" in run.data.metrics]
            if finished:
                epochs[trial_id] = max(1, int(round(finished[0].data.metrics["best_epoch"])))
        return epochs

    def _trial_runs(self, trial_id: str):
        return queries.trial_runs(self.client, self.experiment_id, self.parent_run_id, trial_id)

    def start_trial(self, trial_id: str, params: dict, tags: dict | None = None) -> None:
        """A nested run for the trial. KerasTuner runs a trial again when the process running it
        died; its earlier run, RUNNING or (killed between MLflow and KerasTuner saving) FINISHED,
        becomes KILLED, so that each trial counts once."""
        earlier = [run for run in self._trial_runs(trial_id) if run.info.status in ("RUNNING", "FINISHED")]
        # The parent named: in a worker process the search's run is not this process's active run.
        run = mlflow.start_run(experiment_id=self.experiment_id, nested=True, parent_run_id=self.parent_run_id,
                               run_name=f"trial-{trial_id}", tags={**(tags or {}), TRIAL_ID_TAG: trial_id})
        for old in earlier:
            self.client.set_tag(old.info.run_id, "nnlab.rerun_as", run.info.run_id)
            self.client.set_terminated(old.info.run_id, "KILLED")
        mlflow.log_params(params)
        self._log_inputs(DATA_CONTEXTS[:2])

    def kill_trial(self, trial_id: str, reason: str) -> None:
        """The RUNNING runs of a trial whose worker died end KILLED, `reason` their failure tag."""
        for run in self._trial_runs(trial_id):
            if run.info.status == "RUNNING":
                self.client.set_tag(run.info.run_id, "nnlab.failure", reason[:5000])
                self.client.set_terminated(run.info.run_id, "KILLED")

    def trial_failure(self, trial_id: str) -> str | None:
        """Why the trial's latest run failed, as its worker recorded it."""
        runs = sorted(self._trial_runs(trial_id), key=lambda run: run.info.start_time)
        return runs[-1].data.tags.get("nnlab.failure") if runs else None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """Metrics of the active run: the trial being run, else the search's parent run."""
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def log_curves(self, curves: list[tuple[int, dict]], prefix: str) -> None:
        """A whole fit's epochs, (epoch, logs) each, on the active run in a few batched writes, each
        name under `prefix` ("fold2/val_loss"): a cross-validated trial's K fits would otherwise
        write K times as often as a trial of one fit."""
        now = int(time.time() * 1000)
        metrics = [Metric(f"{prefix}{name}", float(value), now, step) for step, logs in curves
                   for name, value in logs.items()]
        run_id = mlflow.active_run().info.run_id
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics a batch
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def end_trial(self, status: str, metrics: dict | None = None, reason: str | None = None,
                  details: str | None = None, timed_out: bool = False, tags: dict | None = None,
                  params: dict | None = None) -> None:
        """End the trial's run with `status`, where it is still open: a stop that cut an earlier
        end short ends it again; with none open, MLflow's calls below would start a run.
        `params`: hyperparameters the trial declared after its run started."""
        if not _trial_run_open():
            return
        if params:
            mlflow.log_params(params)
        if metrics:
            self.log_metrics(metrics)
        if tags:
            mlflow.set_tags(tags)
        if reason:
            mlflow.set_tag("nnlab.failure", reason[:5000])
        if details:
            mlflow.log_text(details, "failure.txt")
        if timed_out:
            mlflow.set_tag("nnlab.timed_out", "true")
        mlflow.end_run(status)

    def leaderboard(self, task) -> pd.DataFrame:
        return queries.trial_leaderboard(self.tracking_uri, self.experiment_id, self.parent_run_id, task)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        mlflow.log_text(table.to_csv(index=False), artifact_file)

    def log_images(self, images: dict[str, bytes], folder: str = "plots") -> None:
        """PNG images (plots.png) as artifacts of the active run, `folder/<name>.png`."""
        if not images:
            return
        with tempfile.TemporaryDirectory() as directory:
            for name, image in images.items():
                (Path(directory) / f"{name}.png").write_bytes(image)
            mlflow.log_artifacts(directory, folder)

    # ------------------------------------------------------------ the champion

    def holder_tested_elsewhere(self, registered_name: str, judged_by: str | None = None) -> RegisteredVersion | None:
        """The version holding `registered_name`'s champion alias when it was tested otherwise
        than this search's champion is (another test split or judge, or no record of either): it
        must be scored as this one is before the alias can move."""
        holder = registry.alias_holder(self.client, registered_name)
        test = self.data_inputs.get("test")
        if holder is None or not registry.tested_otherwise(
                holder, test_label(test, judged_by) if test is not None else None):
            return None
        return RegisteredVersion(registered_name, str(holder.version), holder.run_id,
                                 f"models:/{registered_name}/{holder.version}", dict(holder.tags or {}))

    def log_holder_score(self, key: str, holder: HolderScore) -> None:
        """The alias holder's score on this search's test split, beside the champion's own on the
        search's run: holder_<key>, linked to the test split, and which version it was."""
        mlflow.set_tag("nnlab.holder_version", holder.version)
        if holder.score is not None:
            mlflow.log_metric(f"holder_{key}", float(holder.score), dataset=self.data_inputs.get("test"))
        else:
            mlflow.set_tag("nnlab.holder_unscored", (holder.reason or "")[:5000])

    def log_champion(
        self,
        model,
        registered_name: str,
        example_inputs,
        example_outputs,
        test_metrics: dict,
        trial_id: str,
        pip_requirements: list[str],
        task=None,
        version_tags: dict | None = None,
        metadata: dict | None = None,
        holder_score: HolderScore | None = None,
        judged_by: str | None = None,
    ) -> ChampionRecord:
        """Log the champion (.keras, signature, input example) as a logged model of the parent
        run, register a new version, and move the `champion` alias to it when its test score
        beats the holder's, as the task ranks them (higher accuracy, lower RMSE; `task` None:
        classification). `example_outputs` are the model's predictions for `example_inputs`, for
        the signature; `version_tags` go on the new version beside its test score (a fine-tune's
        lineage); `metadata` in its MLmodel (its class names); `holder_score` the alias holder's
        score on this search's test split where it was tested on another (`judged_by`: what
        scores a model besides the split, a GAN's judge). The test_ metrics are
        linked to the test split, the val_ ones to the validation split, and all to the logged
        model."""
        return registry.log_champion(self.client, self.parent_run_id, model, registered_name, example_inputs,
                                     example_outputs, test_metrics, trial_id, pip_requirements, task=task,
                                     version_tags=version_tags, metadata=metadata, datasets=self.data_inputs,
                                     holder_score=holder_score, judged_by=judged_by)
