"""The experiment's own search space: a `[space]` table in the TOML narrows or fixes the
hyperparameters the builders declare, without touching the builders.

    [space]
    learning_rate = [1e-3, 5e-3]    # a range [min, max] for a number
    conv_blocks = 3                 # a fixed value
    activation = ["relu", "tanh"]   # some of a choice's values

`parse` checks the table's shape when the config loads (no TensorFlow needed); `check` compares
it with what a builder really declares before anything is tracked; `Narrowed` is the `hp` a
builder sees during the search: the same calls, answered with the experiment's ranges.

A builder declares a number's legal limits where it declares the number, `within(hp,
FRACTION).Float("dropout", 0.0, 0.5, ...)`: the values any search of it may reach (a dropout
below 1, a learning rate above 0), wider than the range it searches by default. `check` refuses
a `[space]` entry outside them, naming them.

Keras and KerasTuner are imported inside functions, so that `parse` checks a config without them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from nnlab.errors import SpaceError

_SCALARS = (bool, int, float, str)
# The attribute of the `hp` that `declared` builds with, where `within` records each number's Bounds.
_RECORDED = "nnlab_bounds"


@dataclass(frozen=True)
class Bounds:
    """The legal limits of a hyperparameter that is a number: any search of it stays inside
    them. None: no limit on that side; an open side excludes the limit itself."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""  # why a limit is where it is, said when a value is refused

    def holds(self, value) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'above' if self.low_open else 'at least'} {self.low}"
        if self.low is None:
            return f"{'below' if self.high_open else 'at most'} {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


# Limits several builders share.
FRACTION = Bounds(0, 1, high_open=True, why="a share of units dropped; 1 would drop them all")
LEARNING_RATE = Bounds(0, 1, low_open=True, why="0 learns nothing; a rate above 1 overshoots")
COUNT = Bounds(1)  # units, filters, batch size: at least one
OPTIONAL_COUNT = Bounds(0, why="0 leaves the layer out")
PENALTY = Bounds(0, why="a penalty below 0 would reward large weights")


def layer_count(most: int, least: int = 1) -> Bounds:
    """A layer count's limits: the model declares each possible layer's hyperparameters, `most` of them."""
    return Bounds(least, most, why=f"the model declares hyperparameters for {most} layers at most")


def within(hp, bounds: Bounds) -> "_Bounded":
    """`hp` for one declaration, recording `bounds` as the number's legal limits for `check`:
    `within(hp, FRACTION).Float("dropout", 0.0, 0.5, step=0.1, default=0.3)` declares and returns
    what `hp.Float(...)` does (the search range stays the builder's; the limits only bound what
    `[space]` may ask)."""
    return _Bounded(hp, bounds)


class _Bounded:
    def __init__(self, hp, bounds: Bounds):
        self._hp = hp
        self._bounds = bounds

    def _record(self, name: str) -> None:
        recorded = getattr(self._hp, _RECORDED, None)  # only `declared`'s hp records; a trial's does not
        if recorded is not None:
            recorded[name] = self._bounds

    def Int(self, name, *args, **kwargs):
        self._record(name)
        return self._hp.Int(name, *args, **kwargs)

    def Float(self, name, *args, **kwargs):
        self._record(name)
        return self._hp.Float(name, *args, **kwargs)

    def Fixed(self, name, *args, **kwargs):
        self._record(name)
        return self._hp.Fixed(name, *args, **kwargs)

    def Choice(self, name, *args, **kwargs):
        self._record(name)
        return self._hp.Choice(name, *args, **kwargs)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(table, where: str) -> dict:
    """The `[space]` table, checked for shape: each entry one value or a non-empty list of values
    of one kind; two numbers are a range and must be in order."""
    if not isinstance(table, dict):
        raise SpaceError(f"{where}: space must be a table of hyperparameter = value or [values]")
    parsed = {}
    for name, value in table.items():
        entry = f"{where}: space.{name} = {value!r}"
        if isinstance(value, _SCALARS):
            parsed[name] = value
            continue
        if not isinstance(value, list) or not value or not all(isinstance(item, _SCALARS) for item in value):
            raise SpaceError(f"{entry} must be a value or a non-empty list of values")
        if len({"number" if _is_number(item) else type(item).__name__ for item in value}) > 1:
            raise SpaceError(f"{entry} mixes kinds of values")
        if len(value) == 2 and all(_is_number(item) for item in value) and value[0] > value[1]:
            raise SpaceError(f"{entry}: the range's minimum {value[0]} exceeds its maximum {value[1]}")
        parsed[name] = list(value)
    return parsed


def declared(build) -> tuple[dict, dict]:
    """(name -> hyperparameter, name -> Bounds) for everything `build(hp)` declares. The builders
    declare every possible layer's hyperparameters, inactive ones inside their conditional scopes
    (models/layers.py), so one build with the defaults sees the whole space."""
    import keras
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    setattr(hp, _RECORDED, {})
    build(hp)
    keras.backend.clear_session()
    return {parameter.name: parameter for parameter in hp.space}, getattr(hp, _RECORDED)


def check(overrides: dict, build, where: str) -> None:
    """Every entry names a hyperparameter the builder declares, suits its kind and stays within
    its legal limits."""
    if not overrides:
        return
    parameters, limits = declared(build)
    for name, value in overrides.items():
        entry = f"{where}: space.{name} = {value!r}"
        if name not in parameters:
            raise SpaceError(f"{where}: space.{name}: the model declares no such hyperparameter; "
                             f"known: {', '.join(sorted(parameters))}")
        parameter = parameters[name]
        kind = type(parameter).__name__
        values = value if isinstance(value, list) else [value]
        if kind in ("Int", "Float"):
            if not all(_is_number(item) for item in values) or (kind == "Int" and not all(isinstance(item, int) for item in values)):
                raise SpaceError(f"{entry}: {name} takes {'whole numbers' if kind == 'Int' else 'numbers'}")
            if isinstance(value, list) and len(value) != 2:
                raise SpaceError(f"{entry}: a range is [min, max]")
            _check_bounds(name, values, limits.get(name), entry)
            if isinstance(value, list) and parameter.sampling == "log" and value[0] <= 0:
                raise SpaceError(f"{entry}: {name} is searched on a log scale, so its minimum must be above 0")
        elif kind == "Boolean":
            if not all(isinstance(item, bool) for item in values):
                raise SpaceError(f"{entry}: {name} takes true or false")
        elif kind == "Choice":
            unknown = [item for item in values if item not in parameter.values]
            if unknown:
                raise SpaceError(f"{entry}: {unknown[0]!r} is not one of {', '.join(map(str, parameter.values))}")
        elif kind == "Fixed":
            _check_fixed(parameter, value, entry, build, limits.get(name))


def _check_bounds(name: str, values: list, bounds: Bounds | None, entry: str) -> None:
    """Every value (a fixed one, a range's ends, a choice's) within the builder's limits."""
    if bounds is not None and any(_is_number(item) and not bounds.holds(item) for item in values):
        why = f" ({bounds.why})" if bounds.why else ""
        raise SpaceError(f"{entry}: {name} must be {bounds}{why}")


def _check_fixed(parameter, value, entry: str, build, bounds: Bounds | None) -> None:
    """A builder's fixed value opened up: values of the same kind (strings for a string, numbers
    for a number: two a [min, max] range, three or more a choice, as `Narrowed.Fixed` reads
    them; true/false for a Boolean), each of which the builder accepts (it raises ValueError
    for one it cannot build, an unknown cell say)."""
    import keras
    import keras_tuner

    name, fixed = parameter.name, parameter.value
    values = value if isinstance(value, list) else [value]
    if _is_number(fixed):
        if not all(_is_number(item) for item in values):
            raise SpaceError(f"{entry}: {name} takes numbers")
    elif isinstance(fixed, (bool, str)) and not all(isinstance(item, type(fixed)) for item in values):
        raise SpaceError(f"{entry}: {name} takes {'true or false' if isinstance(fixed, bool) else 'text'} like {fixed!r}")
    _check_bounds(name, values, bounds, entry)
    for item in values:
        try:
            build(Narrowed(keras_tuner.HyperParameters(), {name: item}))
        except ValueError as error:
            raise SpaceError(f"{entry}: {error}") from None
        finally:
            keras.backend.clear_session()


class Narrowed:
    """An `hp` whose Int, Float, Choice, Boolean and Fixed answer with the experiment's `[space]`
    entries; everything else (values, conditional scopes) is the wrapped `hp`'s own."""

    def __init__(self, hp, overrides: dict):
        self._hp = hp
        self._overrides = overrides

    def __getattr__(self, name):
        return getattr(self._hp, name)

    def _declare(self, kind: str, args, kwargs):
        import keras_tuner

        declare = getattr(self._hp, kind)
        call = inspect.signature(getattr(keras_tuner.HyperParameters, kind)).bind(self._hp, *args, **kwargs)
        call.apply_defaults()
        options = dict(call.arguments)
        options.pop("self")
        name = options["name"]
        if name not in self._overrides:
            return declare(*args, **kwargs)
        value = self._overrides[name]
        scope = {key: options[key] for key in ("parent_name", "parent_values")}
        if not isinstance(value, list) or (kind == "Boolean" and len(set(value)) == 1):
            return self._hp.Fixed(name, value[0] if isinstance(value, list) else value, **scope)
        if kind in ("Int", "Float"):
            low, high = value
            default = options["default"] if options["default"] is not None and low <= options["default"] <= high else low
            options.update(min_value=low, max_value=high, default=default)
            if options.get("step") is not None and options["step"] > high - low:
                options["step"] = None  # the builder's step does not fit the narrower range
            return declare(**options)
        if kind == "Choice":
            default = options["default"] if options["default"] in value else value[0]
            options.update(values=value, default=default)
            return declare(**options)
        return declare(*args, **kwargs)  # Boolean: a list of both values is the full choice

    def Int(self, *args, **kwargs):
        return self._declare("Int", args, kwargs)

    def Float(self, *args, **kwargs):
        return self._declare("Float", args, kwargs)

    def Choice(self, *args, **kwargs):
        return self._declare("Choice", args, kwargs)

    def Boolean(self, *args, **kwargs):
        return self._declare("Boolean", args, kwargs)

    def Fixed(self, name, value, parent_name=None, parent_values=None):
        """The builder's fixed value, unless the experiment opens it up: one value fixes that
        value, two numbers are a range (Int if both are whole), other lists a choice; the
        builder's value stays the default where the experiment's values hold it."""
        scope = {"parent_name": parent_name, "parent_values": parent_values}
        if name not in self._overrides:
            return self._hp.Fixed(name, value, **scope)
        chosen = self._overrides[name]
        if not isinstance(chosen, list) or len(set(chosen)) == 1:
            return self._hp.Fixed(name, chosen[0] if isinstance(chosen, list) else chosen, **scope)
        if len(chosen) == 2 and all(_is_number(item) for item in chosen):
            low, high = chosen
            whole = all(isinstance(item, int) for item in chosen)
            default = value if _is_number(value) and low <= value <= high and (not whole or value == int(value)) else low
            if whole:
                return self._hp.Int(name, low, high, default=int(default), **scope)
            return self._hp.Float(name, low, high, default=float(default), **scope)
        return self._hp.Choice(name, chosen, default=value if value in chosen else chosen[0], **scope)
