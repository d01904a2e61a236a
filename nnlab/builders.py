"""A user's own model as a family: a `build(hp, spec)` function (KerasTuner's `build(hp)` too), a
KerasTuner `HyperModel`, or a reference to one in a file or a module ("my_models.py:build",
"package.module:build"). Each becomes a row (nnlab.models.Family) that searches like a built-in
family: the same compile and fit policy, the task's loss and metrics, `[space]` and its checks,
nested runs, the champion step, registration as `<experiment>-<name>`. The row carries a digest
of the builder's code: a search saved by other code is not resumed (nnlab/state.py).

A reference is read when the config loads (its digest: the file's bytes) but imported only when a
model is first built, so that a config check runs none of the user's code. KerasTuner is imported
inside functions, when a builder is adapted.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from nnlab.errors import ConfigError, NotAModel, one_line
from nnlab.models import FAMILIES, Family

# A user's builder is handed whatever the data is; it says itself what it cannot take.
ALL_KINDS = ("image", "sequence", "table")
FORM = "FILE.py:NAME or package.module:NAME"


def is_reference(model: str) -> bool:
    """A model setting that names a user's builder rather than a family."""
    return ":" in model


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def reference_family(reference: str, folder: Path | None = None, where: str | None = None) -> Family:
    """The family of `model = "my_models.py:build"` (a file, relative to `folder`: the experiment
    file's, else the current folder) or `"package.module:build"`; a ConfigError naming `where`
    (the experiment file) and the reference when the file or module cannot be found."""
    named = f"{where}: model = {reference!r}" if where else f"model {reference!r}"
    target, _, attribute = reference.rpartition(":")
    if not target or not attribute.isidentifier():
        raise ConfigError(f"{named}: a builder is named {FORM}")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        if not path.is_file():
            raise ConfigError(f"{named}: no file {path}")
        code = path.read_bytes()
        loader = _Loaded(reference, attribute, path=path)
    else:
        try:
            spec = importlib.util.find_spec(target)
        except (ImportError, ValueError):  # a parent package that is not there
            spec = None
        if spec is None or not spec.origin or not Path(spec.origin).is_file():
            raise ConfigError(f"{named}: no module {target} on the Python path")
        code = Path(spec.origin).read_bytes()
        loader = _Loaded(reference, attribute, module=target)
    return _family(attribute, loader, digest(code), reference, named)


def object_family(model, where: str = "model") -> Family:
    """The family of a builder handed over from Python: a function, a KerasTuner HyperModel (an
    instance, or a class made with no arguments), or a Keras model itself."""
    import keras
    import keras_tuner

    if isinstance(model, type) and issubclass(model, keras_tuner.HyperModel):
        model = model()
    if isinstance(model, keras.Model):
        name, code = model.name, model.to_json().encode()
    elif isinstance(model, keras_tuner.HyperModel):
        name = model.name or type(model).__name__
        code = _source(type(model))
    elif callable(model):
        name = getattr(model, "__name__", type(model).__name__)
        code = _source(model)
    else:
        raise ConfigError(f"{where}: {model!r} is neither a family's name, a build(hp, spec) function, a KerasTuner "
                          f"HyperModel, a Keras model nor a reference {FORM}")
    if name == "<lambda>":
        raise ConfigError(f"{where}: a lambda has no name to register its champion under; define the builder with def")
    shown = f"{name} ({getattr(model, '__module__', None) or 'Python'})"
    return _family(name, _Loaded(shown, name, loaded=model), digest(code), shown, f"{where}={name}")


def _family(name: str, builder, code: str, reference: str, named: str) -> Family:
    family = FAMILIES.get(name)
    if family is not None and family.code is None:
        raise ConfigError(f"{named}: {name} is the name of a built-in family; give the builder another name")
    return Family(name, ALL_KINDS, builder, code=code, reference=reference)


def _source(thing) -> bytes:
    """What a builder's digest is made of: its source (a notebook's cell too), else its bytecode."""
    try:
        return inspect.getsource(thing).encode()
    except (OSError, TypeError):
        code = getattr(thing, "__code__", None)
        return code.co_code + repr(code.co_consts).encode() if code is not None else repr(thing).encode()


class _Loaded:
    """`build(hp, spec)` for a user's builder, imported on its first call and adapted: a HyperModel's
    `build(hp)`, a function of `hp` alone or of `hp` and the data's spec."""

    def __init__(self, reference: str, attribute: str, path: Path | None = None, module: str | None = None,
                 loaded=None):
        self.reference, self.attribute, self.path, self.module = reference, attribute, path, module
        self.__name__ = attribute
        self._build, self._fit = (None, None) if loaded is None else _adapted(loaded, reference)

    def __call__(self, hp, spec):
        if self._build is None:
            self._build, self._fit = _adapted(self._import(), self.reference)
        return self._build(hp, spec)

    @property
    def own_fit(self):
        """A HyperModel's own `fit(hp, model, *args, **kwargs)` where its class defines one (known
        once it has built a model), else None: nnlab's fit policy calls it as KerasTuner would."""
        return self._fit

    def _import(self):
        try:
            if self.path is not None:
                name = f"nnlab_builder_{self.path.stem}"
                spec = importlib.util.spec_from_file_location(name, self.path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module  # what Keras' deserialisation of a class defined there looks up
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            else:
                module = importlib.import_module(self.module)
        except Exception as error:  # the user's code: whatever it raises is told in one line
            raise ConfigError(f"model {self.reference}: cannot import it: {one_line(error)}") from None
        if not hasattr(module, self.attribute):
            raise ConfigError(f"model {self.reference}: {self.path or self.module} defines no {self.attribute}")
        return getattr(module, self.attribute)


def _adapted(builder, reference: str) -> tuple:
    """(build(hp, spec), its own fit or None) of a user's builder."""
    import keras
    import keras_tuner

    if isinstance(builder, keras.Model):
        return _copies(builder), None
    if isinstance(builder, type) and issubclass(builder, keras_tuner.HyperModel):
        builder = builder()
    if isinstance(builder, keras_tuner.HyperModel):
        # KerasTuner's base fit is model.fit itself: only a class's own one is the user's.
        own_fit = builder.fit if type(builder).fit is not keras_tuner.HyperModel.fit else None
        return (lambda hp, spec: builder.build(hp)), own_fit
    if not callable(builder):
        raise ConfigError(f"model {reference}: not a function or a KerasTuner HyperModel but {type(builder).__name__}")
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return builder, None
    positional = [parameter for parameter in parameters
                  if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)]
    takes_spec = len(positional) >= 2 or any(parameter.kind == parameter.VAR_POSITIONAL for parameter in parameters)
    return (builder if takes_spec else (lambda hp, spec: builder(hp))), None


def _copies(model):
    """build(hp, spec) of a Keras model handed over itself: a fresh copy of it each time, its
    layers with new initial weights, as a builder's model has them (a table's refits, an
    average's members start apart), compiled as it was where it was (else by nnlab, with a
    searched learning rate)."""
    import keras

    compiled = model.get_compile_config() if model.compiled else None

    def build(hp, spec):
        copy = keras.models.clone_model(model)
        if compiled is not None:
            copy.compile_from_config(compiled)
        return copy

    return build


def check_builds(architecture, family: Family, examples=None) -> None:
    """Build once with the space's first values before anything is created (`architecture(hp)`,
    the policy's, which refuses what is not a Keras model), and call the model on `examples` (two
    training inputs; not where a HyperModel's own fit hands its model the data): a builder that
    raises, returns no model, or returns one that cannot take the data (its input another shape)
    is one line naming it. A later trial's failure is that trial's, as for any family."""
    import keras
    import keras_tuner

    from nnlab.tabular import keras_inputs

    try:
        model = architecture(keras_tuner.HyperParameters())
    except ConfigError:
        raise
    except NotAModel as error:
        raise ConfigError(f"model {family.reference} {error}") from None
    except Exception as error:
        keras.backend.clear_session()
        raise ConfigError(f"model {family.reference} cannot build a model with its space's first values: "
                          f"{one_line(error)}") from None
    try:  # a HyperModel's own fit may reshape the data before its model sees it
        if examples is not None and getattr(family.builder, "own_fit", None) is None:
            model(keras_inputs(examples, model), training=False)
    except Exception as error:
        raise ConfigError(f"model {family.reference} builds a model that cannot take the data: {one_line(error)}") from None
    finally:
        keras.backend.clear_session()
