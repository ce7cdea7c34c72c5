"""``agentpty hook``: hooks that can only run a command report events to the server with it.

Claude Code posts most hook events itself (http hooks); ``SessionStart``
runs only command hooks, so it runs ``python -m agentpty hook`` with the
event as JSON on stdin. The server that started the agent set
``AGENTPTY_HOOK_URL`` in its environment. Standard library only: it runs
once per event and must start fast.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

__all__ = ["hook"]


def hook() -> None:
    """Claude Code hook: forward the event on stdin to the agentpty server that started us.

    Never fails the agent: problems are reported on stderr and the exit code is 0.
    """
    url = os.environ.get("AGENTPTY_HOOK_URL")
    if not url:
        return
    try:
        event = json.load(sys.stdin)
        request = urllib.request.Request(
            url,
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f"agentpty hook: could not report to the server: {exc}", file=sys.stderr)
