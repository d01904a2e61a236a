"""What the command-line tools share: argument errors as one line with exit code 2, and the
argument types they parse."""

from __future__ import annotations

import argparse
import contextlib
import contextvars

# Help texts the commands share, word for word.
TRACKING_URI_HELP = "MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)"
DATA_DIR_HELP = "folder with MNIST IDX files (gzip or not) or mnist.npz"
# Settings whose flag is not `--` and the setting's name with '-' for '_'.
FLAG_NAMES = {"jit_compile": "--jit"}


def flag_name(setting: str) -> str:
    """The command-line flag that sets an experiment setting: `ensemble` -> `--ensemble`."""
    return FLAG_NAMES.get(setting, f"--{setting.replace('_', '-')}")


# A message names a setting the way its caller gave it: a command's flag (--max-trials 0), or
# within a library call (nnlab.search(...): keywords_named) the keyword argument (max_trials=0).
_KEYWORDS = contextvars.ContextVar("nnlab_keywords_named", default=False)


@contextlib.contextmanager
def keywords_named():
    """Within: messages name settings as a library call's keywords, not as flags."""
    token = _KEYWORDS.set(True)
    try:
        yield
    finally:
        _KEYWORDS.reset(token)


def setting_name(setting: str) -> str:
    """A setting's name in a message: `--max-trials` in a command, `max_trials` in a library call."""
    return setting if _KEYWORDS.get() else flag_name(setting)


def as_typed(setting: str, value) -> str:
    """A setting as the user gave it: `--ensemble -1` on the command line (a switch alone),
    `ensemble=-1` in a library call."""
    if _KEYWORDS.get():
        return f"{setting}={value!r}"
    return flag_name(setting) if value is True else f"{flag_name(setting)} {value}"


def quoted(setting: str, value) -> str:
    """A setting and its value as Python writes it: `--model 'rnn5'` or `model='rnn5'`."""
    return joined(setting, repr(value))


def joined(setting: str, text: str) -> str:
    """A setting's name and a text that begins with its value: `--time-budget 'soon' is ...`,
    `time_budget='soon' is ...`."""
    return f"{setting}={text}" if _KEYWORDS.get() else f"{flag_name(setting)} {text}"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line, `<short name>: error: ...`, and exit code 2,
    not argparse's usage block."""

    def __init__(self, *args, short_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.short_name = short_name

    def error(self, message):
        self.exit(2, f"{self.short_name}: error: {message} (see --help)\n")


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def port(text: str) -> int:
    value = whole_number(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to 65535)")
    return value
