"""The names nnlab writes into the MLflow store (run tags, the alias, the champion's artifact,
the tie-break metric), shared by the run writing, the registry and the read-back queries."""

from __future__ import annotations

CHAMPION_ALIAS = "champion"
CHAMPION_ARTIFACT = "champion"
SEARCH_ID_TAG = "nnlab.search_id"
TRIAL_ID_TAG = "nnlab.trial_id"
CHAMPION_VERSION_TAG = "nnlab.champion_version"
CHAMPION_TRIAL_TAG = "nnlab.champion_trial"  # its trial id, or an average champion's ids: "08,00,01"
# On a registered version: the MLflow dataset it was tested on, "name@digest". The alias moves
# only on scores of one test split: a holder tested on another is rescored on the new one's.
TEST_DATA_TAG = "nnlab.test_data"
TASK_TAG = "nnlab.task"  # classification or regression: how the search's results are ranked
# MLflow 3's kind of experiment: training models, not GenAI, so that its UI shows runs.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# On the search's run while its trials run in worker processes: the port its oracle serves on,
# by which a worker finds the run to nest its trials under.
ORACLE_PORT_TAG = "nnlab.oracle_port"
TIE_BREAK_METRIC = "best_epoch_val_loss"  # a trial run's val_loss at its best epoch: it ranks val_accuracy ties
