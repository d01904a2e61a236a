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


@dataclass
class TimeBudget:
    """Wall-clock seconds for one run of the search command, trials and champion together.

    The next trial may start only if the longest trial so far, plus the champion's further
    epochs at the slowest epoch rate seen, still fit in what is left. The champion's reserve is
    at most CHAMPION_SHARE of the budget: a full reserve (20 epochs for each of three members of
    an average) outgrew a short budget, and a 5-minute CNN search stopped after its first trial,
    leaving half the budget unused. The members share whatever is left at the end. The first
    trial always starts: until one has run there is nothing to estimate from.
    """

    seconds: float
    champion_epochs: int = 0
    clock: object = time.monotonic
    started: float = field(default=None)
    longest_trial: float = 0.0
    slowest_epoch: float = 0.0

    def __post_init__(self):
        if self.started is None:
            self.started = self.clock()

    def record_trial(self, seconds: float, epoch_seconds: float) -> None:
        self.longest_trial = max(self.longest_trial, seconds)
        self.slowest_epoch = max(self.slowest_epoch, epoch_seconds)

    def left(self) -> float:
        return self.seconds - (self.clock() - self.started)

    def deadline(self) -> float:
        """The clock reading at which the budget runs out."""
        return self.started + self.seconds

    def needed_for_next(self) -> float:
        return self.longest_trial + min(self.champion_epochs * self.slowest_epoch, CHAMPION_SHARE * self.seconds)

    def stop_reason(self) -> str | None:
        """Why no further trial should start, or None while one still fits."""
        if not self.longest_trial:
            return None
        needed, left = self.needed_for_next(), self.left()
        if needed <= left:
            return None
        return (f"time budget {format_duration(self.seconds)}: {format_duration(max(left, 0))} left, "
                f"the next trial and the champion need about {format_duration(needed)}")
