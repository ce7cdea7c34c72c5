"""Making the Claude Code CLI under test ask before running tools, across versions.

2.1.197 asks by default (permission mode ``default``). 2.1.332 made ``auto``
the default (a classifier runs lower-risk tools without asking) and renamed
the asking mode ``manual`` (docs/claude-code-findings.md, §j). Tests that need
a permission prompt pass the asking mode the binary knows.
"""

from __future__ import annotations

import functools
import subprocess

__all__ = ["asking_mode_args"]


@functools.cache
def asking_mode_args(binary: str) -> str:
    """``--permission-mode=<mode>`` that makes ``binary`` ask before running a Bash tool."""
    help_text = subprocess.run(
        [binary, "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    mode = "manual" if '"manual"' in help_text else "default"
    return f"--permission-mode={mode}"
