"""The one exception tree of agentpty.

::

    AgentptyError
     ├── NotFound              unknown id (HTTP 404, WS close 4004)
     ├── InvalidInput          bad field or value (HTTP 400/422)
     ├── Conflict              state forbids the operation (HTTP 409)
     │    └── InvalidTransition  milestone status change not allowed
     ├── AgentUnavailable      the agent's binary is missing (HTTP 422)
     ├── SessionStartError     the agent process could not start (WS close 4005)
     └── StoreUnavailable      the database cannot be reached (HTTP 503)

Adapters translate foreign errors (``OSError``, ``sqlite3``, ``pymongo``) into
these with ``raise ... from exc``; the API maps them to status codes in one place.
"""

from __future__ import annotations

__all__ = [
    "AgentUnavailable",
    "AgentptyError",
    "Conflict",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "SessionStartError",
    "StoreUnavailable",
]


class AgentptyError(Exception):
    """Base of every error agentpty raises on purpose.

    ``code`` is a stable machine-readable name; the message says what was
    wrong and how to fix it.
    """

    code = "ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(AgentptyError):
    code = "NOT_FOUND"


class InvalidInput(AgentptyError):
    code = "INVALID_INPUT"


class Conflict(AgentptyError):
    code = "CONFLICT"


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"


class AgentUnavailable(AgentptyError):
    code = "AGENT_UNAVAILABLE"


class SessionStartError(AgentptyError):
    code = "SESSION_START_FAILED"


class StoreUnavailable(AgentptyError):
    code = "STORE_UNAVAILABLE"
