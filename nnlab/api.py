"""nnlab as a library: `nnlab.search(...)` and `nnlab.finetune(...)` run what the commands run and
return the result (nnlab.pipeline.SearchResult: the champion as a Keras model, its registered name
and version, the leaderboard as a DataFrame, the search's MLflow run id, the test metrics).

    import nnlab
    result = nnlab.search("digits", model=build, max_trials=4, epochs=3)   # build(hp, spec)
    result = nnlab.search("blobs", data=(x, y), test=(x_test, y_test))      # arrays in memory
    result.leaderboard; result.champion.predict(x_test)

From Python the trials run in the calling process (a notebook or a debugger sees them); the
commands, thin callers of the same functions, run a long search's in a worker process. A user's mistake raises
one type, nnlab.NnlabError, with the command's one-line message and no traceback from inside
nnlab; Ctrl-C or a notebook's stop button ends the trial in progress KILLED, keeps the finished
ones, and raises KeyboardInterrupt: the same call resumes. Keras and MLflow are imported inside
functions (the pipeline's), so that `import nnlab` stays light.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import threading
import time
import types

from nnlab.accelerators import caller_policy_kept, start_backend
from nnlab.builders import is_reference, object_family, reference_family
from nnlab.cli import as_typed, flag_name, keywords_named
from nnlab.commands import load_data, say_data, signals_interrupt
from nnlab.config import FILE_KEYS, load_config, memory_config
from nnlab.data import MEMORY, register_memory
from nnlab.data.memory import memory_dataset
from nnlab.errors import ConfigError, NnlabError, one_line
from nnlab.formats import wrapped
from nnlab.models import register
from nnlab.pipeline import SearchResult, check_before_start, run_search
from nnlab.finetuning import finetune_config, prepare_finetune
from nnlab.source import found_source
from nnlab.workers import DEFAULT_TRIALS_PER_WORKER, WorkerPlan, split_address

# The options that define what a worker runs: a chief hands its own to the workers it starts.
WORKER_OPTIONS = ("model", "tuner", "max_trials", "epochs", "seed", "data_dir", "mixed_precision", "jit_compile",
                  "steps_per_execution", "cross_validation", "executions_per_trial")
PROG = "nnlab.search"


def search(experiment: str = "mnist", *, model=None, data=None, target=None, validation=None, test=None,
           task: str | None = None, kind: str | None = None, tuner: str | None = None, max_trials: int | None = None,
           epochs: int | None = None, final_epochs: int | None = None, seed: int | None = None, space: dict | None = None,
           time_budget=None, ensemble: int | None = None, tracking_uri: str | None = None, data_dir: str | None = None,
           fresh: bool = False, workers: int | None = None, callbacks=None, verbose: bool = True,
           **settings) -> SearchResult:
    """Search `experiment` (a data set's name: its built-in default; experiments/NAME.toml; a TOML
    file's path; or, with `data`, the name of your own), track every trial in MLflow, register the
    champion and return a SearchResult.

    model: a family's name ("cnn", "dfn", ...), your own `build(hp, spec)` function (or KerasTuner's
      `build(hp)`), a KerasTuner HyperModel, a Keras model (trained afresh each trial), or
      "my_models.py:build" / "package.module:build".
    data: your own data held in memory: `(x, y)` arrays, a pandas DataFrame with `target=` (the
      column to predict), or a tf.data.Dataset, a PyTorch DataLoader or Dataset, or a Keras
      PyDataset of (x, y) (read whole); `validation=` and `test=` the same way,
      else split by the seed. `task` ("classification" or "regression") is inferred when left out,
      and said; `kind="sequence"` reads 3-dimensional x as (steps, features) rather than images.
    The other settings are the experiment file's keys (and the command's flags): tuner, max_trials,
    epochs, final_epochs, seed, space, time_budget, ensemble, tracking_uri, data_dir, batch_size,
    patience, trial_timeout, ... `fresh`: discard the saved tuner state. `workers`: run the trials
    in that many worker processes (default: here). `callbacks`: Keras callbacks, a copy of each in
    every trial's fits, as KerasTuner's `search(..., callbacks=)` gives them (not the champion
    step's training). `verbose=False`: say nothing."""
    unknown = sorted(set(settings) - set(FILE_KEYS))
    if unknown:
        error = ConfigError(f"nnlab.search: unknown setting {unknown[0]!r}; known: the experiment file's keys, "
                            f"{', '.join(FILE_KEYS)}; a hyperparameter to fix or search goes in "
                            f"space={{{unknown[0]!r}: ...}}")
        raise error.with_traceback(None) from None
    settings.update(tuner=tuner, max_trials=max_trials, epochs=epochs, final_epochs=final_epochs, seed=seed,
                    space=space, time_budget=time_budget, ensemble=ensemble, tracking_uri=tracking_uri,
                    data_dir=data_dir)
    memory = dict(data=data, target=target, validation=validation, test=test, task=task, kind=kind)
    echo = print if verbose else (lambda _line: None)
    return _as_a_library("search", lambda: with_interrupts(
        lambda interrupted: run(experiment, settings, model=model, memory=memory, fresh=fresh, workers=workers,
                                interrupted=interrupted, echo=echo, callbacks=callbacks)))


def finetune(source: str, target: str, *, search: bool = False, strategy: str | None = None,
             unfreeze: int | None = None, learning_rate: float | None = None,
             fine_tune_learning_rate: float | None = None, source_members: str | None = None,
             classes: list | None = None, labels_per_class: int | None = None, epochs: int | None = None, max_trials: int | None = None,
             ensemble: int | None = None, cross_validation: int | None = None, seed: int | None = None,
             data_dir: str | None = None, tracking_uri: str | None = None, fresh: bool = False,
             data=None, validation=None, test=None, kind: str | None = None, verbose: bool = True) -> SearchResult:
    """Train the registered model `source` ("mnist-cnn", "mnist-cnn@champion", "mnist-cnn/3", or a
    .keras file) on the data set or experiment `target`, as `python -m nnlab.finetune SOURCE
    TARGET` does with the same options; returns its SearchResult (registered as
    `<target>-from-<source>`). `classes` and `labels_per_class` pick the target's classes and
    its labelled examples per class, as its experiment file's [data] keys do. With `data` (and
    `validation`, `test`, `kind`: as nnlab.search takes them), `target` names your own images."""
    options = dict(search=search, strategy=strategy, unfreeze=unfreeze, learning_rate=learning_rate,
                   fine_tune_learning_rate=fine_tune_learning_rate, source_members=source_members,
                   classes=classes, labels_per_class=labels_per_class, epochs=epochs, max_trials=max_trials, ensemble=ensemble,
                   cross_validation=cross_validation, seed=seed, data_dir=data_dir, tracking_uri=tracking_uri)
    memory = dict(data=data, validation=validation, test=test, kind=kind)
    echo = print if verbose else (lambda _line: None)
    return _as_a_library("finetune", lambda: with_interrupts(
        lambda interrupted: run_finetune(source, target, options, memory=memory, fresh=fresh, interrupted=interrupted,
                                         echo=echo)))


def run(experiment: str, settings: dict, *, model=None, memory: dict | None = None, fresh: bool = False,
        workers=None, interrupted=None, echo=print, prog: str = PROG, started: float | None = None,
        callbacks=None) -> SearchResult:
    """The search both doors share: `settings` are the command's flags (None: not given); `workers`
    a WorkerPlan, a count of worker processes, or None (the trials here). `started`: when the
    command started (time.monotonic), where a time budget counts from (None: now). `callbacks`:
    a user's Keras callbacks for the trials' fits."""
    started = time.monotonic() if started is None else started
    callbacks = _checked_callbacks(callbacks, workers)
    settings = {key: value for key, value in settings.items() if value is not None}
    family = _own_family(model)
    if model is not None:
        settings["model"] = family.name if family is not None else model
    dataset, config = _given_data(experiment, settings, memory, "nnlab.search(data=...)")
    config = config or load_config(experiment, settings)
    if family is not None:
        config = dataclasses.replace(config, builder=family.reference)
    if isinstance(workers, int):  # from Python: a count
        workers = _library_workers(experiment, settings, workers, in_process=dataset is not None or family is not None)
    check_before_start(config, workers)  # before TensorFlow and the data load: a mistake is said at once
    dataset = _data_said(prog, config, dataset, echo)
    if workers is not None and workers.automatic:
        from nnlab.oracles import planned_trials_of  # KerasTuner, loaded with the data's TensorFlow

        if workers.runs_here(planned_trials_of(config)):
            workers = None
    return run_search(config, dataset, fresh=fresh, interrupted=interrupted, workers=workers, echo=echo,
                      started=started, callbacks=callbacks)


def _checked_callbacks(callbacks, workers) -> list:
    """A user's callbacks as a list, or a ConfigError: not Keras callbacks, not copyable (each
    trial's fits get a copy, as KerasTuner gives them), or asked of worker processes, which
    cannot hold this process's objects."""
    if callbacks is None:
        return []
    import keras

    listed = [callbacks] if isinstance(callbacks, keras.callbacks.Callback) else callbacks
    if not isinstance(listed, (list, tuple)):
        raise ConfigError(f"callbacks: give a list of keras.callbacks.Callback; got {type(callbacks).__name__}")
    listed = list(listed)
    others = sorted({type(item).__name__ for item in listed if not isinstance(item, keras.callbacks.Callback)})
    if others:
        raise ConfigError(f"callbacks: give a list of keras.callbacks.Callback; it holds {', '.join(others)}")
    if listed and workers:
        raise ConfigError("callbacks: the trials of workers= run in other processes, which cannot take this "
                          "process's callbacks; leave one of them out")
    try:
        copy.deepcopy(listed)
    except Exception as error:  # what the user's object holds (a lock, a file): said in one line
        raise ConfigError(f"callbacks: each trial gets a copy of each callback, and copy.deepcopy cannot copy "
                          f"these: {one_line(error)}") from None
    return listed


def run_finetune(source: str, target: str, options: dict, *, memory: dict | None = None, fresh: bool = False,
                 interrupted=None, echo=print, prog: str = "nnlab.finetune") -> SearchResult:
    """The fine-tune both doors share (nnlab/finetuning.py says what it checks and says); `memory`:
    the data handed over from Python, as nnlab.search takes it."""
    picked = [key for key in ("classes", "labels_per_class", "data_dir") if options.get(key) is not None]
    if picked and (memory or {}).get("data") is not None:
        raise ConfigError(f"{picked[0]}= picks from a named data set; with data= give the rows to train on")
    settings = {key: options[key] for key in ("seed", "tracking_uri") if options.get(key) is not None}
    dataset, base = _given_data(target, settings, memory, "nnlab.finetune(data=...)")
    config = finetune_config(source, target, options, base)
    found_source(config.source, config.tracking_uri)  # a missing source said before the data loads
    dataset = _data_said(prog, config, dataset, echo)
    loaded = prepare_finetune(config, dataset, options, target, lambda line: echo(wrapped(f"{prog}: {line}")))
    # A fixed strategy is one trial with nothing to resume: each run starts afresh.
    return run_search(config, dataset, fresh=fresh or not options.get("search"), source=loaded,
                      interrupted=interrupted, echo=echo)


def _own_family(model):
    """The family of a user's own builder handed over from Python (a function, a HyperModel, a
    "file.py:build" reference), registered; None for a family's name or no model."""
    if model is None or (isinstance(model, str) and not is_reference(model)):
        return None
    return register(reference_family(model) if isinstance(model, str) else object_family(model))


def _given_data(experiment: str, settings: dict, memory: dict | None, origin: str) -> tuple:
    """(the data set, its config) of data handed over from Python (`memory`: data= and what
    describes it), or (None, None) where there is none. The data is loaded here and said as
    load_data says a named data set."""
    memory = {key: value for key, value in (memory or {}).items() if value is not None}
    if memory.get("data") is None:
        if memory:
            raise ConfigError(f"{', '.join(f'{key}=' for key in memory)} describe{'s' if len(memory) == 1 else ''} "
                              "data=, which is missing")
        return None, None
    dataset = _memory_data(experiment, settings, memory)
    return dataset, dataclasses.replace(memory_config(experiment, settings), origin=origin)


def _data_said(prog: str, config, dataset, echo):
    """The data set, said: a named one loaded (load_data), one handed over from Python (loaded
    already, before its config could be checked) said as load_data says one, the backend started first."""
    if dataset is None:
        return load_data(prog, config, echo=echo)
    start_backend(echo=lambda line: echo(f"{prog}: {line}"))
    say_data(prog, dataset, echo)
    return dataset


def _memory_data(experiment: str, settings: dict, memory: dict):
    """The user's arrays, DataFrame or data loader as a data set named after the experiment, split by
    the search's seed, registered as the data set `memory` for the config to read its kind."""
    if experiment.endswith(".toml"):
        raise ConfigError(f"data= takes the experiment's name, not a file ({experiment}): "
                          "nnlab.search(\"NAME\", data=...)")
    if settings.get("dataset") not in (None, MEMORY):
        raise ConfigError(f"dataset={settings['dataset']!r} and data= name two data sets: give one")
    dataset = memory_dataset(memory.pop("data"), name=experiment, seed=settings.get("seed", 1),
                             validation_fraction=settings.get("validation_fraction", 0.1), **memory)
    register_memory(dataset)
    return dataset


def _library_workers(experiment: str, settings: dict, count: int, in_process: bool) -> WorkerPlan:
    """`workers=N` from Python: N worker processes, started as the command starts them."""
    if in_process:
        raise ConfigError(f"workers={count} runs the trials in other processes, which cannot reach a model or data "
                          "held in this one: leave workers out, or name the builder in the experiment file "
                          "(model = \"my_models.py:build\")")
    if count == 0:  # workers elsewhere reach the chief's oracle at an address the command's --oracle gives
        raise ConfigError(f"workers=0 leaves the trials to workers on other machines, which need the oracle a "
                          f"command serves: python -m nnlab.search {experiment} --workers 0 --oracle HOST:PORT "
                          "(README: Scaling out)")
    return worker_plan(experiment, settings, count)


def worker_plan(experiment: str, settings: dict, count: int | None, trials_each: int = DEFAULT_TRIALS_PER_WORKER,
                oracle: str | None = None, gpus: str | None = None) -> WorkerPlan:
    """The chief's WorkerPlan: `count` processes each started as `python -m nnlab.search EXPERIMENT`
    with the search's own options; ConfigError for a mistake in it. `count` None: one, or none
    where the search is short enough to run here (WorkerPlan.runs_here)."""
    automatic = count is None and oracle is None and not gpus
    count = 1 if count is None else count
    for key, value in (("workers", count), ("worker_trials", trials_each)):
        if value < 0:
            raise ConfigError(f"{as_typed(key, value)}: must be 0 or more")
    if count == 0 and oracle is None:
        raise ConfigError("--workers 0 leaves the trials to workers on other machines: give --oracle HOST:PORT "
                          "for them to reach")
    bind = oracle or "127.0.0.1:0"
    try:
        split_address(bind)
    except ValueError as error:
        raise ConfigError(f"--oracle {error}") from None
    numbers = tuple(part.strip() for part in gpus.split(",")) if gpus else ()
    if not all(number.isdigit() for number in numbers):
        raise ConfigError(f"--gpus {gpus!r}: GPU numbers separated by commas, e.g. 0,1")
    command = [sys.executable, "-m", "nnlab.search", experiment]
    for key in WORKER_OPTIONS:
        value = settings.get(key)
        if value is True:  # a switch
            command.append(flag_name(key))
        elif value is not None and value is not False:
            command += [flag_name(key), str(value)]
    return WorkerPlan(count=count, command=tuple(command), trials_each=trials_each, bind=bind, gpus=numbers,
                      automatic=automatic)


def callable_module(name: str, function) -> None:
    """Module `name` (nnlab.search, nnlab.finetune, the commands) called calls `function`. Importing
    a submodule makes it the package's attribute of that name, in place of the function that
    `nnlab/__init__.py` put there: `nnlab.search(...)` then still searches."""
    if name in sys.modules and name != "__main__":
        call = lambda _module, *args, **kwargs: function(*args, **kwargs)  # noqa: E731
        sys.modules[name].__class__ = type("CallableModule", (types.ModuleType,), {"__call__": call})


def with_interrupts(work):
    """`work(interrupted)` with Ctrl-C and SIGTERM recorded (nnlab.commands.signals_interrupt),
    where Python lets a handler be set: the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return work(lambda: False)
    with signals_interrupt() as received:
        return work(lambda: bool(received))


def _as_a_library(what: str, work):
    """`work()`, a user's mistake raised as it is with its traceback cut here (nothing of nnlab's
    machinery); a stop said in one line, then KeyboardInterrupt, as Python stops."""
    try:
        with keywords_named(), caller_policy_kept():
            return work()
    except NnlabError as error:
        raise error.with_traceback(None) from None
    except KeyboardInterrupt:
        message = (f"nnlab.{what}: stopped; the trial in progress is marked KILLED and runs again on resume, "
                   f"finished trials are kept. Resume with the same call.")
        print(message, file=sys.stderr)
        raise KeyboardInterrupt(message) from None
