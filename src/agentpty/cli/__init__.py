"""The ``agentpty`` command line: the server, and a client for everything the API does.

``serve`` runs the server (``serve.py``, flags generated from the settings);
``attach`` makes this terminal a project's terminal (``attach.py``); the
other commands call the REST API (``client.py``, ``projects.py``,
``sessions.py``, ``milestones.py``) and print tables or JSON (``output.py``);
``hook`` is what Claude Code's command hooks run (``hook.py``; only
``SessionStart``, the others post themselves). ``app.py`` puts them
together. This module stays small: ``python -m agentpty hook`` imports only
``hook.py``.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the command line (the ``agentpty`` script)."""
    from agentpty.cli.app import main as run

    run()
