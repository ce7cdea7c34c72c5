"""Access to the services built in the app's lifespan."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from agentpty.service.container import Services

__all__ = ["services"]


def services(conn: HTTPConnection) -> Services:
    svc: Services = conn.app.state.services
    return svc
