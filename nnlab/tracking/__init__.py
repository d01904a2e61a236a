"""MLflow tracking: this package is the only place in nnlab that imports mlflow.

Run layout: the MLflow experiment is the nnlab experiment; one parent run per search, tagged
with its search id so that a resumed search reopens it; one nested run per KerasTuner trial,
tagged with the trial id; the champion logged on the parent run and registered as a new version
of `<experiment>-<model>`, the alias `champion` moving to it only when it beats the holder.

Split by what it does, as MLflow's own mlflow/keras/ is:
- store.py: which store, whether it can take a search, a new one made fast, the experiment in it;
- runs.py: a search's runs written (`SearchTracker`: the parent run, trial runs, data inputs);
- registry.py: the champion registered and its alias moved; a registered model read back;
- queries.py: reading the store back (leaderboards, searches, champions, experiments);
- tags.py: the names nnlab writes into the store.
Importing it loads mlflow and pandas, never TensorFlow: mlflow.keras and nnlab.tabular (Keras),
and MLflow's schema tools (slow), are imported inside functions, only where a model is saved or
loaded or a store first made, so that reading the store back (nnlab.report, nnlab.ui) stays light.
"""

from __future__ import annotations

from nnlab.errors import TrackingError  # raised here, kept with the other errors users see
from nnlab.tracking.queries import (
    SearchRun,
    champions_table,
    experiments_with_runs,
    find_searches,
    runs_counted,
    runs_page,
    trial_leaderboard,
)
from nnlab.tracking.registry import (
    ChampionRecord,
    HolderScore,
    RegisteredVersion,
    load_registered_model,
    model_uri,
    registered_version,
)
from nnlab.tracking.runs import DATA_CONTEXTS, SearchTracker, autologging_off, data_inputs
from nnlab.tracking.store import (
    DEFAULT_TRACKING_URI,
    PROBE_SECONDS,
    absolute_uri,
    configure,
    empty_store_template,
    ensure_experiment,
    is_server,
    no_store,
    resolve_tracking_uri,
    server_advice,
    sqlite_file,
    store_problem,
)
from nnlab.tracking.tags import (
    CHAMPION_ALIAS,
    CHAMPION_ARTIFACT,
    CHAMPION_TRIAL_TAG,
    CHAMPION_VERSION_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    ORACLE_PORT_TAG,
    SEARCH_ID_TAG,
    TASK_TAG,
    TEST_DATA_TAG,
    TIE_BREAK_METRIC,
    TRIAL_ID_TAG,
)

__all__ = [
    "CHAMPION_ALIAS", "CHAMPION_ARTIFACT", "CHAMPION_TRIAL_TAG", "CHAMPION_VERSION_TAG", "DATA_CONTEXTS",
    "DEFAULT_TRACKING_URI", "EXPERIMENT_KIND_TAG", "MODEL_TRAINING", "ORACLE_PORT_TAG", "PROBE_SECONDS",
    "SEARCH_ID_TAG", "TASK_TAG", "TEST_DATA_TAG", "TIE_BREAK_METRIC", "TRIAL_ID_TAG",
    "ChampionRecord", "HolderScore", "RegisteredVersion", "SearchRun", "SearchTracker", "TrackingError",
    "absolute_uri", "autologging_off", "champions_table", "configure", "data_inputs", "empty_store_template",
    "ensure_experiment", "experiments_with_runs", "find_searches", "is_server", "load_registered_model", "model_uri",
    "no_store", "registered_version", "resolve_tracking_uri", "runs_counted", "runs_page", "server_advice",
    "sqlite_file", "store_problem", "trial_leaderboard",
]
