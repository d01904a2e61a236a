"""The errors nnlab's users see, and how a command says them, in one place.

Each error is raised where the mistake is found, with a message that names the flag, key, file
or model and says what would do. A command says a `USER_ERRORS` one as one line on stderr,
`<command>: error: <message>`, and exits 2; a search that ran but cannot produce a champion
(`SearchFailed`) says so with a line per failed trial and exits 1 (nnlab.commands.run_command).
Errors from Keras, KerasTuner or MLflow that reach a trial or a figure are told in one line by
`one_line` / `last_line`, never as a traceback.
"""

from __future__ import annotations

import re
import sys


class NnlabError(Exception):
    """Every error nnlab raises for a user's mistake or a search that cannot finish: one type
    to catch from Python (`except nnlab.NnlabError`), each message one line."""


class ConfigError(NnlabError, ValueError):
    """A configuration mistake, worded for the user."""


class DataError(NnlabError, ValueError):
    """A data set that cannot be loaded as asked: the message says which file or name and why."""


class SpaceError(NnlabError, ValueError):
    """A `[space]` entry that cannot apply; the message names the entry."""


class SourceError(NnlabError, ValueError):
    """A source that cannot be used: the message names it and says why."""


class InputError(NnlabError, ValueError):
    """A file the model cannot take: the message names it and says why."""


class NotAModel(NnlabError, TypeError):
    """A builder returned something other than a Keras model (a user's own builder, say)."""


class SearchError(NnlabError, RuntimeError):
    """A search that cannot go on as asked; the message says what to do."""


class WorkersError(NnlabError, RuntimeError):
    """The workers cannot go on: the message says why."""


class TrackingError(NnlabError, RuntimeError):
    """A tracking request that cannot be met (an unknown registered model, say)."""


class SearchFailed(NnlabError, RuntimeError):
    """The search ran but cannot produce a champion: no trial finished, or too many failed."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


# What the searching commands say in one line and exit code 2 (a SearchFailed exits 1).
USER_ERRORS = (ConfigError, DataError, SearchError, SourceError)


def print_error(prog: str, error: BaseException | str, details: list[str] = ()) -> None:
    """`<prog>: error: <message>` on stderr, then any details indented under it."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    for line in details:
        print(f"{prog}:   {line}", file=sys.stderr)


# Keras 3 wraps an error raised inside a layer's call: "Exception encountered when calling
# Sequential.call().", the error itself in bold (terminal escapes), then the arguments the call
# received, one per line ("  • kwargs=<class 'inspect._empty'>"), which a last line would give.
KERAS_CALL = re.compile(r"(?:(?:\w+\.)*(\w+): )?Exception encountered when calling [^\n]*\n.*?\x1b\[1m(.*?)\x1b\[0m", re.S)
# An array Keras prints in such an error (an input's values), over many lines.
PRINTED_ARRAY = re.compile(r"\[[\[\]\s\d.eE+\-,]*\]")


def _keras_call_error(text: str) -> tuple[str | None, str] | None:
    """(the error's type where the text names it, its message on one line, an array in it as
    [...]) of the last error Keras wrapped in `text`; None where it wrapped none."""
    found = None
    for found in KERAS_CALL.finditer(text):
        pass
    if found is None:
        return None
    return found.group(1), " ".join(PRINTED_ARRAY.sub("[...]", found.group(2)).split())


def last_line(message: str | None) -> str | None:
    """A trial's message (KerasTuner keeps the whole traceback) reduced to its last line, the
    error's module path left out: "ResourceExhaustedError: OOM when allocating ..."."""
    wrapped = _keras_call_error(message or "")
    if wrapped is not None:
        return f"{wrapped[0] or 'Error'}: {wrapped[1]}"
    lines = (message or "").strip().splitlines()
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", lines[-1]) if lines else None


def one_line(error: BaseException) -> str:
    """An exception as its type and the last line of its message (of a layer's error Keras
    wrapped, the error's own)."""
    wrapped = _keras_call_error(str(error))
    text = [wrapped[1]] if wrapped is not None else str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".strip(": ")
