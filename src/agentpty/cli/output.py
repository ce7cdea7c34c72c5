"""What commands print: aligned tables for people, JSON for scripts.

A table is a list of rows (dicts from the API) and columns, each column a
header and a function from a row to its cell. Cells are one line; ``-``
stands for nothing. ``--json`` prints the API's own objects instead, so a
script sees every field, including ones a newer server adds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import typer

__all__ = ["Column", "age", "print_json", "print_table", "short"]

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str) -> None:
    """``rows`` under ``columns``' headers, left-aligned; ``empty`` when there are none."""
    if not rows:
        typer.echo(empty)
        return
    cells = [[_cell(get(row)) for _, get in columns] for row in rows]
    headers = [header for header, _ in columns]
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(columns))]
    for line in [headers, *cells]:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def short(identifier: Any) -> str | None:
    """The first 8 characters of an id: enough to name it (every command takes a prefix)."""
    return str(identifier)[:8] if identifier else None


def age(timestamp: Any) -> str | None:
    """An ISO timestamp as local time to the second."""
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return str(timestamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
