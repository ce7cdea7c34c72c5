"""Domain errors → HTTP status codes, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException

from agentpty.api.bodies import SafeJSONResponse, install_validation_handler
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
    """Domain errors, HTTP errors and 422s as JSON that renders whatever text they quote."""

    async def handle(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, AgentptyError)
        return SafeJSONResponse(
            {"detail": exc.message, "code": exc.code}, status_code=status_for(exc)
        )

    async def handle_http(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, HTTPException)
        return SafeJSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(AgentptyError, handle)
    app.add_exception_handler(HTTPException, handle_http)
    install_validation_handler(app)
