"""A table as text: aligned for a terminal, CSV for a spreadsheet, Markdown for a README, and an
aligned table cut to a terminal's width (`fitted`). Used by `nnlab.report` and by the searching
commands' final print; pandas is imported inside functions, so that a command's argument check
does not wait for it.
"""

from __future__ import annotations

import math
import textwrap
from typing import NamedTuple

FORMATS = ("table", "csv", "markdown")
# The widest line a command prints (paths and addresses aside): a terminal's, with room to spare.
TERMINAL_WIDTH = 120
# A column name longer than this is shortened where that narrows its column (`short_name`).
LONG_NAME = 12


def counted(number: int, noun: str) -> str:
    """`number` and `noun`, its plural where number is not 1: "1 trial", "3 trials", "0 epochs"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(table) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned (pandas' own needs `tabulate`)."""
    import pandas as pd

    numeric = [pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])
               for column in table.columns]
    lines = ["| " + " | ".join(str(column) for column in table.columns) + " |",
             "| " + " | ".join("---:" if is_number else "---" for is_number in numeric) + " |"]
    for row in table.itertuples(index=False):
        cells = [_number(value.item() if hasattr(value, "item") else value) for value in row]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def render(table, output_format: str) -> str:
    """`table` (a pandas DataFrame) in `output_format`, one of FORMATS."""
    import pandas as pd

    if output_format == "csv":
        return table.to_csv(index=False).rstrip("\n")
    if output_format == "markdown":
        return to_markdown(table)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        return table.to_string(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-")


class Fitted(NamedTuple):
    """A table cut to a width: its text, the columns left out that differ between its rows and
    those alike in every row, and the short names it uses (short name -> column)."""
    text: str
    left_out: list[str]
    alike: list[str]
    short_names: dict[str, str]


def short_name(name: str) -> str:
    """A column name to head a narrow column: a name longer than LONG_NAME as its words' initials
    (learning_rate_schedule: lrs), or a single word's first five letters; a short name stays."""
    if len(name) <= LONG_NAME:
        return name
    words = [word for word in name.replace("/", "_").split("_") if word]
    return "".join(word if word.isdigit() else word[0] for word in words) if len(words) > 1 else name[:5]


def _width(table) -> int:
    return max(len(line) for line in render(table, "table").splitlines())


def _varying_first(table, keep: int) -> list[str]:
    """The columns after the first `keep`: those whose values differ between the rows, the most
    distinct values first (a searched learning rate before an on/off switch), then those alike in
    every row; equals in the table's order."""
    counts = {column: table[column].astype(str).nunique() for column in table.columns[keep:]}
    return sorted(counts, key=lambda column: (counts[column] < 2, -counts[column]))


def _short_names(table, keep: int, names: dict) -> dict[str, str]:
    """column -> the name it is shown under: `names`' own, and after the first `keep` columns a
    long name's `short_name` where that narrows its column and no other column is called so."""
    renamed = dict(names)
    for column in table.columns[keep:]:
        short = short_name(str(column))
        if column in renamed or short == column or short in set(table.columns) | set(renamed.values()):
            continue
        if _width(table[[column]].rename(columns={column: short})) < _width(table[[column]]):
            renamed[column] = short
    return renamed


def wrapped(line: str, width: int = TERMINAL_WIDTH) -> str:
    """A long line broken between words within `width`, its continuation indented; a path or an
    address (one word) is never broken, so it may run past."""
    return "\n".join(textwrap.wrap(line, width, subsequent_indent="  ", break_long_words=False,
                                   break_on_hyphens=False))


def fitted(table, width: int = TERMINAL_WIDTH, keep: int = 0, names: dict | None = None) -> Fitted:
    """`table` (a pandas DataFrame) as an aligned table at most `width` characters wide: its first
    `keep` columns always, then as many of the others as fit (`_varying_first`'s order picks them,
    the table's order shows them), shown under the short names `_short_names` gives them (`names`:
    column -> the short name it always gets); where the whole table fits, only `names`."""
    given = {column: short for column, short in (names or {}).items() if column in table.columns}
    if _width(table.rename(columns=given)) <= width:
        return Fitted(render(table.rename(columns=given), "table"), [], [],
                      {short: column for column, short in given.items()})
    renamed = _short_names(table, keep, given)
    chosen = list(table.columns[:keep])
    for column in _varying_first(table, keep):
        candidate = [name for name in table.columns if name in chosen or name == column]
        if _width(table[candidate].rename(columns=renamed)) <= width:
            chosen = candidate
    shown = table[chosen].rename(columns=renamed)
    left = [column for column in _varying_first(table, keep) if column not in chosen]
    alike = [column for column in left if table[column].astype(str).nunique() < 2]
    return Fitted(render(shown, "table"), [column for column in left if column not in alike], alike,
                  {short: column for column, short in renamed.items() if column in chosen})
