"""The ASGI application: routes, auth, lifespan that owns the services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from agentpty import __version__
from agentpty.api import events, hooks, milestones, projects, runs, terminal
from agentpty.api.auth import COOKIE, require_token, token_valid
from agentpty.api.bodies import SafeJSONResponse
from agentpty.api.errors import install_error_handlers
from agentpty.api.guard import RequestGuard, client_address
from agentpty.api.throttle import FailureThrottle
from agentpty.domain.errors import StoreUnavailable
from agentpty.service.container import Services

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(services: Services, token: str) -> FastAPI:
    """Build the app around ``services``; the lifespan opens and closes them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.open()
        try:
            yield
        finally:
            await services.close()

    settings = services.settings
    app = FastAPI(
        title="agentpty",
        version=__version__,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.services = services
    app.state.token = token
    app.state.allowed_origins = _names(settings.allowed_origins)
    app.state.throttle = throttle = FailureThrottle(settings.auth_failure_rate)
    app.add_middleware(
        RequestGuard,
        bound_host=settings.host,
        allowed_hosts=_names(settings.allowed_hosts),
        max_body_bytes=settings.max_body_bytes,
        throttle=throttle,
        hook_key_valid=services.hooks.key_valid,
    )
    install_error_handlers(app)
    guarded = [Depends(require_token)]
    app.include_router(projects.router, dependencies=guarded)
    app.include_router(milestones.router, dependencies=guarded)
    app.include_router(runs.router, dependencies=guarded)
    app.include_router(events.router, dependencies=guarded)
    app.include_router(terminal.router)
    app.include_router(milestones.ws_router)
    app.include_router(hooks.router)

    @app.get("/healthz", tags=["meta"], responses={503: {"description": "the store is failing"}})
    async def healthz() -> Response:
        """Liveness and the store's health; no token needed (for monitors)."""
        try:
            await services.store.health()
        except StoreUnavailable as exc:
            log.warning("health check: %s", exc.message)
            return SafeJSONResponse(
                {"status": "failing", "store": exc.message, "version": __version__},
                status_code=503,
            )
        return SafeJSONResponse({"status": "ok", "version": __version__})

    web = resources.files("agentpty") / "web"

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        if "token" in request.query_params:
            # Sign-in: the token moves into an HttpOnly cookie and leaves the address bar.
            if not token_valid(request):
                throttle.failed(client_address(request.scope))
                # The page then shows its sign-in panel; the wrong token leaves the URL too.
                return RedirectResponse("/", status_code=303)
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        return FileResponse(str(web / "index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return _static_file(web, name)

    @app.get("/static/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> Response:
        return _static_file(web / "vendor", name, hint=" (run 'make web' to install xterm.js)")

    return app


def _names(setting: str) -> frozenset[str]:
    """A comma-separated setting as a set of lower-case names."""
    return frozenset(name.strip().lower() for name in setting.split(",") if name.strip())


def _static_file(folder: Traversable, name: str, hint: str = "") -> Response:
    path = folder / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return JSONResponse({"detail": f"no static file {name!r}{hint}"}, status_code=404)
    return FileResponse(str(path))
