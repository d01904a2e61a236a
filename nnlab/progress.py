"""What a search says while it works: one line per trial, a line inside a long trial, and how
long the rest will take once the first trial has shown the pace. One line per step, so that
a log file or CI reads as well as a terminal; a step that runs long says so at least every
PROGRESS_SECONDS. Trials are named by their trial id everywhere (the leaderboard's, the MLflow
run's `trial-<id>`, the champion's members); "7 of 10" counts them.
"""

from __future__ import annotations

import math
import threading
import time

from nnlab.budget import format_duration

PROGRESS_SECONDS = 30  # the longest a step stays silent before a line says where it is


class Narrator:
    """`echo` that remembers when it last spoke; callable like echo, from any thread (a chief's
    oracle hears its workers on gRPC threads)."""

    def __init__(self, echo):
        self.echo = echo
        self.last = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.last = time.monotonic()
            self.echo(line)

    def quiet_for(self) -> float:
        return time.monotonic() - self.last


def trial_line(report, objective: str, stopped_at: str | None, several_workers: bool) -> str:
    """`trial 06 (7 of 10)  val_accuracy 0.9900  best 0.9900, trial 06  elapsed 2m34s`; a trial
    that timed out says what stopped it (`stopped_at`: "trial_timeout 30s", "time budget 3m00s")."""
    counted = f" ({report.number} of {report.planned})" if report.planned else f" ({report.number})"
    if report.worker is not None and several_workers:
        counted += f" [{report.worker}]"
    result = (f"{objective} {report.score:.4f}" if report.status == "COMPLETED"
              else f"{report.status}: {report.message or 'no reason given'}")
    if report.timed_out and stopped_at:
        result += f" (stopped at {stopped_at})"
    best = (f"best {report.best_score:.4f}, trial {report.best_trial_id}" if report.best_score is not None
            else "best -")
    return f"trial {report.trial_id}{counted}  {result}  {best}  elapsed {format_duration(report.elapsed_seconds)}"


def epoch_line(trial_id: str, epoch: int, epochs: int | None, objective: str, value: float | None,
               elapsed: float) -> str:
    """A trial still running: `trial 09: epoch 4 of 6  val_accuracy 0.9700  elapsed 3m02s`."""
    of = f" of {epochs}" if epochs else ""
    shown = f"  {objective} {value:.4f}" if value is not None and math.isfinite(value) else ""
    return f"trial {trial_id}: epoch {epoch}{of}{shown}  elapsed {format_duration(elapsed)}"


def pace_line(report, planned_epochs: int | None, workers: int, members: int, final_epochs: int,
              trial_epochs: int | None = None, budget_left: float | None = None) -> str | None:
    """After a new search's first trial: the rest at its pace, an epoch's training and a trial's
    set-up (building, graph tracing, its first epoch's extra; the first trial's is the largest,
    so this errs long): the trials planned, each stopping early as this one did (of the
    `trial_epochs` a fit of it could train), then the champion's further training; where that
    is more than the time budget's `budget_left` seconds, that the budget ends it sooner. None
    where nothing can be said."""
    if report.status != "COMPLETED" or not report.epochs or not planned_epochs or not report.planned:
        return None
    epoch = report.epoch_seconds or report.seconds / report.epochs
    set_up = max(0.0, report.seconds - report.epochs * epoch)  # all its fits' (its folds')
    parts, forecast = [], 0.0
    champion = members * final_epochs * epoch
    if report.planned > 1:  # a search of one trial has none left, whatever epochs it did not need
        # The planned epochs are each trial's fit's: every one of them costs the trial's fits. A
        # table's fits stop early at a fifth of their 60 epochs: counted in full, 3 minutes for 1.
        trained = report.epochs / report.fits
        early = min(1.0, trained / trial_epochs) if trial_epochs else 1.0
        epochs_left = max(0.0, planned_epochs - trained) * early * report.fits
        trials_left = (epochs_left * epoch + (report.planned - 1) * set_up) / max(1, workers)
        parts.append(f"trials about {format_duration(trials_left)} more")
        forecast += trials_left
    if champion:
        parts.append(f"champion up to {format_duration(champion)} ({members} x {final_epochs} epochs)")
        forecast += champion
    if not parts:
        return None
    # A budget with max_trials left high (a random search's) forecasts hours it will never take.
    budget = (f"; the time budget ends the search sooner, in {format_duration(max(0.0, budget_left))}"
              if budget_left is not None and forecast > budget_left else "")
    # A table's epoch takes hundredths of a second: "0.0 s an epoch" said nothing.
    rate = f"{epoch:.1f}" if epoch >= 0.1 else f"{epoch:.3f}"
    return (f"At trial {report.trial_id}'s pace ({rate} s an epoch + {set_up:.0f} s a trial): "
            f"{', '.join(parts)}{budget}")
