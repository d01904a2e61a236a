"""A table as text: aligned for a terminal, CSV for a spreadsheet, Markdown for a README. Used by
`nnlab.report` and by the searching commands' final print; pandas is imported inside functions,
so that a command's argument check does not wait for it.
"""

from __future__ import annotations

import math

FORMATS = ("table", "csv", "markdown")


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
