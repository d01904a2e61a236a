"""The results a searching command prints at its end (nnlab.commands.print_results): a leaderboard
cut to a terminal's 120 columns, what it left out and where the whole table is, and the
champion's line with its task's headline test metrics and the best baseline in words."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from nnlab.commands import print_results
from nnlab.formats import TERMINAL_WIDTH, fitted, render
from nnlab.tasks import CLASSIFICATION, GENERATION, REGRESSION

# A line may run longer only where a path or an address makes it so.
LONG_WORD = re.compile(r"(/|https?://)\S{20,}")


def wide_lines(lines: list[str]) -> list[str]:
    return [line for text in lines for line in text.splitlines()
            if len(line) > TERMINAL_WIDTH and not LONG_WORD.search(line)]


def test_the_printed_results_fit_a_terminal(searched_store):
    result = searched_store.result
    lines: list[str] = []
    print_results(result, echo=lines.append)
    text = "\n".join(lines).splitlines()
    assert not wide_lines(lines)
    # The leaderboard: its own columns, then as many hyperparameters as fit.
    start = text.index(next(line for line in text if line.startswith("Leaderboard (best first, 3 of 3 trials)")))
    header, *rows = text[start + 1:start + 5]
    columns = header.split()
    assert columns[:6] == ["trial", "status", "best_val_accuracy", "best_epoch", "params", "seconds"]
    assert len(columns) > 6 and [row.split()[0] for row in rows] == list(result.leaderboard["trial"])
    assert len(render(result.leaderboard, "table").splitlines()[0]) > TERMINAL_WIDTH  # the whole would not fit
    # What is left out is named, and where the whole table is.
    said = "\n".join(text)
    assert "Short names: " in said and "params = param_count" in said
    assert re.search(r"^Not shown(, the same in every trial above)?: \w", said, re.MULTILINE)
    assert (f"Every column: leaderboard.csv on the search's run, or MLFLOW_TRACKING_URI={searched_store.tracking_uri} "
            "python -m nnlab.report mnist --model cnn") in text
    # The champion: the average's trials, its test accuracy and the majority class's beside it.
    metrics = result.test_metrics
    (champion,) = [line for line in text if line.startswith("Champion: ")]
    assert champion == (f"Champion: the average of trials {', '.join(result.champion_trial.split(','))}; "
                        f"test_accuracy {metrics['test_accuracy']:.4f} "
                        f"(always the most frequent class: {metrics['test_accuracy_majority']:.4f})")


def test_a_wide_table_keeps_its_own_columns_and_what_differs_first():
    table = pd.DataFrame({
        "trial": ["03", "01", "02"], "status": ["FINISHED"] * 3, "best_val_rmse": [0.41, 0.52, 0.6],
        **{f"alike_{number}": ["same"] * 3 for number in range(12)},
        "learning_rate_schedule": ["cosine", "constant", "cosine"], "dropout": [0.1, 0.2, 0.3],
        "bidirectional": [True, False, True],
    })
    cut = fitted(table, 60, keep=3)
    widths = {len(line) for line in cut.text.splitlines()}
    assert max(widths) <= 60 and len(render(table, "table").splitlines()[0]) > 60
    columns = cut.text.splitlines()[0].split()
    # Those that differ first (the most distinct values first), shortened where their name is long.
    assert columns[:3] == ["trial", "status", "best_val_rmse"]
    assert {"dropout", "lrs", "bidir"} <= set(columns) and cut.short_names == {"lrs": "learning_rate_schedule",
                                                                                "bidir": "bidirectional"}
    assert (cut.left_out, cut.alike) == ([], [f"alike_{number}" for number in range(12)])
    narrower = fitted(table, 45, keep=3)
    assert narrower.left_out and not {"dropout", *narrower.alike} & set(narrower.left_out)
    # Room for all: nothing left out, nothing renamed but what the caller names.
    whole = fitted(table, 1000, keep=3, names={"best_val_rmse": "rmse"})
    assert whole.text.splitlines()[0].split() == ["trial", "status", "rmse", *table.columns[3:]]
    assert (whole.left_out, whole.alike, whole.short_names) == ([], [], {"rmse": "best_val_rmse"})


@pytest.mark.parametrize(("task", "metrics", "said"), [
    (CLASSIFICATION, {"test_loss": 0.03, "test_accuracy": 0.991, "test_accuracy_majority": 0.1135,
                      "test_accuracy_over_best_baseline": 8.73, "test_accuracy_single": 0.99,
                      "test_accuracy_ensemble": 0.991, "val_loss_single": 0.04},
     "test_accuracy 0.9910 (always the most frequent class: 0.1135)"),
    (REGRESSION, {"test_loss": 0.2, "test_rmse": 0.4512, "test_mae": 0.3301, "test_rmse_mean": 12.5,
                  "test_rmse_naive_last": 0.5123, "test_rmse_naive_seasonal": 1.9, "test_rmse_over_best_baseline": 0.88},
     "test_rmse 0.4512  test_mae 0.3301 (the best baseline, the window's last value: test_rmse 0.5123)"),
    (REGRESSION, {"test_rmse": 55.2, "test_mae": 44.0, "test_rmse_mean": 77.1},
     "test_rmse 55.2000  test_mae 44.0000 (always the training mean: test_rmse 77.1000)"),
    (GENERATION, {"test_fid_mnist": 12.3456, "test_confidence": 0.9123, "test_coverage": 10.0},
     "test_fid_mnist 12.3456  test_confidence 0.9123  test_coverage 10"),
])
def test_the_champion_line_holds_the_tasks_headline_metrics(task, metrics, said):
    assert task.headline_text(metrics) == said
