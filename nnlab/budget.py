"""Time limits: durations as people write them, and the search's time budget.

A budget does not cut a trial short: it stops the search from starting a trial that would not
finish in time, keeping room for the champion's own training at the end.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

_UNITS = {"h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value) -> float:
    """Seconds from 900, 900.5, "900", "15m", "1h", "1h30m" or "90s"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not text or match is None or not any(match.groups()):
                raise ValueError(f"{value!r} is not a duration (examples: 900, 15m, 1h, 1h30m)") from None
            seconds = sum(float(amount) * unit for amount, unit in zip(match.groups(), _UNITS.values(), strict=True) if amount)
    if not seconds > 0:
        raise ValueError(f"{value!r} must be longer than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """4.2s, 59s, 1m05s, 2h03m."""
    if seconds < 59.5:
        return f"{seconds:.2g}s" if seconds < 9.5 else f"{round(seconds)}s"
    minutes, whole_seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{whole_seconds:02d}s" if minutes else f"{whole_seconds}s"


CHAMPION_SHARE = 0.5
# What a search does once its training is over, beside its models' test and validation passes:
# the leaderboard, logging and registering the model, the figures, closing the runs. About 2 s
# for the default CNN search (BENCHMARKS.md, issue 30); the passes are estimated apart.
ENDING_SECONDS = 4.0


@dataclass
class TimeBudget:
    """Wall-clock seconds for one run of the search command, from its start to its end: the data,
    the trials, the champion's training and its ending (`ending`: the test and validation passes
    of the champion's models, at their trials' rates, and ENDING_SECONDS).

    The next trial may start only if the longest trial so far, the champion's further epochs (of
    the members it would have now, at their own rates: `champion_plan`, each with the set-up the
    latest trial measured: `set_up_seconds`), and the ending still fit
    in what is left. The champion's reserve
    is at most CHAMPION_SHARE of the budget: a full reserve outgrew a short budget, and a
    5-minute CNN search stopped after its first trial, leaving half the budget unused. A trial
    still training when only the ending is left is stopped (`training_deadline`); the members of
    an average share what is left before it, each training as many epochs as fit its share at
    its own trial's rate (`member_epochs`). The first trial always starts: until one has run
    there is nothing to estimate from.
    """

    seconds: float
    final_epochs: int = 0  # each member's further epochs, at most
    members: int = 1
    # A member's passes at the end (test and validation rows) in epochs of its training.
    prediction_epochs: float = 0.0
    # The champion if the search stopped now: its members' trial ids -> their further epochs.
    champion_plan: dict = field(default_factory=dict)
    clock: object = time.monotonic
    started: float = field(default=None)
    longest_trial: float = 0.0
    slowest_epoch: float = 0.0
    epoch_seconds: dict = field(default_factory=dict)  # trial id -> its epoch's seconds
    # A fit's seconds beside its epochs (building, graph tracing), as the latest trial measured
    # it, under the machine's load of the moment; None until a trial told its epochs.
    set_up: float | None = None

    def __post_init__(self):
        if self.started is None:
            self.started = self.clock()

    def record_trial(self, seconds: float, epoch_seconds: float, trial_id: str | None = None, epochs: int = 0,
                     fits: int = 1) -> None:
        """A trial's seconds, its epoch's, and the epochs all its `fits` (its folds) trained."""
        self.longest_trial = max(self.longest_trial, seconds)
        self.slowest_epoch = max(self.slowest_epoch, epoch_seconds)
        if trial_id is not None and epoch_seconds:
            self.epoch_seconds[trial_id] = epoch_seconds
        if epochs and epoch_seconds:
            self.set_up = max(0.0, seconds - epochs * epoch_seconds) / fits

    def set_up_seconds(self, rate: float) -> float:
        """What a member's training takes beside its epochs: restoring it and its validation
        passes, about an epoch at its rate (the default CNN's: 3.9 s at 3.7 s an epoch on an idle
        machine, 5.4 s at 4.2 s beside another search; BENCHMARKS.md, issue 32's eighth part), and
        the set-up the latest trial measured beside its epochs (building, graph tracing: little on
        a CPU, more where XLA compiles). Half an epoch, kept before, was 1.9 and 2.1 s there."""
        return rate + (self.set_up or 0.0)

    def left(self) -> float:
        return self.seconds - (self.clock() - self.started)

    def deadline(self) -> float:
        """The clock reading at which the budget runs out."""
        return self.started + self.seconds

    def rate(self, trial_id: str) -> float:
        """Seconds an epoch of the trial's model, or the slowest seen where its own is unknown."""
        return self.epoch_seconds.get(trial_id) or self.slowest_epoch

    def ending(self, trial_ids=None) -> float:
        """Seconds the search needs once the training of `trial_ids` (the champion's; None: the
        planned champion's, else the slowest trials') is over."""
        trial_ids = trial_ids if trial_ids is not None else (list(self.champion_plan) or None)
        rates = ([self.rate(trial_id) for trial_id in trial_ids] if trial_ids is not None
                 else [self.slowest_epoch] * self.members)
        return ENDING_SECONDS + self.prediction_epochs * sum(rates)

    def training_deadline(self, trial_ids=None) -> float:
        """The clock reading by which all training ends: the ending's time before the deadline."""
        return self.deadline() - self.ending(trial_ids)

    def champion_seconds(self) -> float:
        """The champion's further training: its planned members' epochs at their own rates (the
        slowest rate for each where none is planned yet), at most CHAMPION_SHARE of the budget."""
        if self.champion_plan:
            seconds = sum(epochs * self.rate(trial_id) + self.set_up_seconds(self.rate(trial_id))
                          for trial_id, epochs in self.champion_plan.items() if epochs)
        elif self.final_epochs:
            seconds = self.members * (self.final_epochs * self.slowest_epoch + self.set_up_seconds(self.slowest_epoch))
        else:
            seconds = 0.0
        return min(seconds, CHAMPION_SHARE * self.seconds)

    def needed_for_next(self) -> float:
        return self.longest_trial + self.champion_seconds() + self.ending()

    def stop_reason(self) -> str | None:
        """Why no further trial should start, or None while one still fits."""
        if not self.longest_trial:
            return None
        needed, left = self.needed_for_next(), self.left()
        if needed <= left:
            return None
        return (f"time budget {format_duration(self.seconds)}: {format_duration(max(left, 0))} left, "
                f"the next trial and the champion need about {format_duration(needed)}")

    def member_epochs(self, trial_id: str, seconds: float, epochs: int) -> int:
        """Of `epochs` further epochs, as many as fit in `seconds` at the trial's own rate: a
        learning rate annealed over the epochs a member will run ends near zero, where one cut
        short by the clock would end high."""
        rate = self.rate(trial_id)
        if not rate:
            return epochs
        return max(0, min(epochs, int((seconds - self.set_up_seconds(rate)) / rate)))
