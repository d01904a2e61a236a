"""The task a search poses, classification, regression or generation, decides in one place what follows
from it: the loss, the metrics, the KerasTuner objective and its direction, the trial metric
`best_<objective>`, the champion's test metrics and when a champion is better than another,
the leaderboard's order, the baselines beside the champion, the champion's few headline test
metrics (what a command prints of them; the rest stay on the run), and which figures the
champion gets.

Every module asks the task (`get_task(spec.task)`, or the name a search's run is tagged with)
instead of naming a metric itself. What every task shares is in base.py; each task is one file
here and its line in TASKS. Importing this package loads no TensorFlow, matplotlib or pandas.
"""

from __future__ import annotations

from nnlab.tasks.base import ChampionFigure, Task
from nnlab.tasks.classification import CLASSIFICATION
from nnlab.tasks.generation import GENERATION
from nnlab.tasks.regression import REGRESSION

# The known tasks, in the order an unknown name's message lists them: one line each.
TASKS = {task.name: task for task in (
    CLASSIFICATION,
    REGRESSION,
    GENERATION,
)}

__all__ = ["CLASSIFICATION", "GENERATION", "REGRESSION", "TASKS", "ChampionFigure", "Task", "get_task"]


def get_task(name: str | None) -> Task:
    """The task of that name; None (a search tracked before tasks existed) is classification."""
    if name is None:
        return CLASSIFICATION
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
