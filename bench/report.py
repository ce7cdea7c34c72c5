"""Result rows, the machine they were measured on, and the Markdown table.

Budgets are judged here, once, from what each measurement returns: a row
with a budget carries a verdict, an informational row does not.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Row", "machine_line", "render_table"]


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``passed`` is None for information without a budget."""

    measurement: str
    result: str
    budget: str = "—"
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "—"
        return "PASS" if self.passed else "FAIL"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(mode: str) -> str:
    """CPU model, cores, Python, kernel and date: what the numbers are only valid for."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Machine: {_cpu_model()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · Linux {platform.release()} · {now} · {mode} run"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(rows: list[Row]) -> str:
    """The rows as a Markdown table (measurement | result | budget | verdict)."""
    lines = ["| measurement | result | budget | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {_cell(r.measurement)} | {_cell(r.result)} | {_cell(r.budget)} | {r.verdict} |"
        for r in rows
    ]
    return "\n".join(lines)
