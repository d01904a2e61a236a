"""The experiment's own search space: a `[space]` table in the TOML narrows or fixes the
hyperparameters the builders declare, without touching the builders.

    [space]
    learning_rate = [1e-3, 5e-3]    # a range [min, max] for a number
    conv_blocks = 3                 # a fixed value
    activation = ["relu", "tanh"]   # some of a choice's values

`parse` checks the table's shape when the config loads (no TensorFlow needed); `check` compares
it with what a builder really declares before anything is tracked; `Narrowed` is the `hp` a
builder sees during the search: the same calls, answered with the experiment's ranges.
"""

from __future__ import annotations

import inspect

_SCALARS = (bool, int, float, str)


class SpaceError(ValueError):
    """A `[space]` entry that cannot apply; the message names the entry."""


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


def declared(build) -> dict:
    """name -> hyperparameter for everything `build(hp)` declares. The builders declare every
    possible layer's hyperparameters, inactive ones inside their conditional scopes
    (models/layers.py), so one build with the defaults sees the whole space."""
    import keras
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    build(hp)
    keras.backend.clear_session()
    return {parameter.name: parameter for parameter in hp.space}


def check(overrides: dict, build, where: str) -> None:
    """Every entry names a hyperparameter the builder declares and suits its kind."""
    if not overrides:
        return
    parameters = declared(build)
    for name, value in overrides.items():
        entry = f"{where}: space.{name} = {value!r}"
        if name not in parameters:
            raise SpaceError(f"{where}: space.{name}: the model declares no such hyperparameter; "
                             f"known: {', '.join(sorted(parameters))}")
        parameter = parameters[name]
        kind = type(parameter).__name__
        if kind in ("Int", "Float"):
            values = value if isinstance(value, list) else [value]
            if not all(_is_number(item) for item in values) or (kind == "Int" and not all(isinstance(item, int) for item in values)):
                raise SpaceError(f"{entry}: {name} takes {'whole numbers' if kind == 'Int' else 'numbers'}")
            if isinstance(value, list):
                if len(value) != 2:
                    raise SpaceError(f"{entry}: a range is [min, max]")
                if parameter.sampling == "log" and value[0] <= 0:
                    raise SpaceError(f"{entry}: {name} is searched on a log scale, so its minimum must be above 0")
        elif kind == "Boolean":
            if not all(isinstance(item, bool) for item in (value if isinstance(value, list) else [value])):
                raise SpaceError(f"{entry}: {name} takes true or false")
        elif kind == "Choice":
            unknown = [item for item in (value if isinstance(value, list) else [value]) if item not in parameter.values]
            if unknown:
                raise SpaceError(f"{entry}: {unknown[0]!r} is not one of {', '.join(map(str, parameter.values))}")
        elif kind == "Fixed":
            _check_fixed(parameter, value, entry, build)


def _check_fixed(parameter, value, entry: str, build) -> None:
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
