"""Domain errors → HTTP status codes, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agentpty.domain.errors import (
    AgentptyError,
    AgentUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    SessionStartError,
    StoreUnavailable,
)

__all__ = ["install_error_handlers", "status_for"]

_STATUS: list[tuple[type[AgentptyError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 400),
    (AgentUnavailable, 422),
    (StoreUnavailable, 503),
    (SessionStartError, 502),
]


def status_for(exc: AgentptyError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AgentptyError)
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=status_for(exc))

    app.add_exception_handler(AgentptyError, handle)
