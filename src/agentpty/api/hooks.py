"""Reports from agents' hooks, for the agent's project.

The body is the agent's own hook payload; its profile translates it
(``HookSupport.parse``); the report moves the conversation id and the
agent state. Authenticated by the per-project key agentpty gave the agent,
not by the API token: in headers when the agent posts itself
(``POST /api/hooks``, answered with an empty body, which the agent reads as
"no decision"), or in the URL ``agentpty hook`` posts to.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError

from agentpty.api.bodies import text_problem
from agentpty.api.deps import services
from agentpty.service.container import Services
from agentpty.service.hooks import KEY_HEADER, PROJECT_HEADER

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/hooks", tags=["hooks"])


@router.post("", status_code=204, response_class=Response)
async def posted_hook(
    payload: Annotated[dict[str, Any], Body()],
    project_id: Annotated[str, Header(alias=PROJECT_HEADER, max_length=128)],
    key: Annotated[str, Header(alias=KEY_HEADER, max_length=128)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Apply one hook report the agent posted itself; the answer has no body.

    An agent reads a JSON answer to some events as its decision (Claude
    Code's ``PermissionRequest``): the user decides, so agentpty says nothing.
    """
    await _apply(svc, project_id, key, payload)
    return Response(status_code=204)


@router.post("/{project_id}")
async def agent_hook(
    project_id: str,
    payload: Annotated[dict[str, Any], Body()],
    key: Annotated[str, Query(max_length=128)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Apply one hook report posted by ``agentpty hook``: what it changed."""
    return await _apply(svc, project_id, key, payload)


async def _apply(
    svc: Services, project_id: str, key: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The stored conversation id and the agent state follow one hook report."""
    if not svc.hooks.key_valid(project_id, key):
        raise HTTPException(status_code=401, detail="wrong hook key for this project")
    _check_text(payload, ("body",))
    project = await svc.projects.get(project_id)
    report, changed = await svc.hooks.receive(project, payload)
    # h12 call site: the same report drives the agent state (no second parse).
    state = None if report is None else await svc.states.report(project.id, report)
    return {
        "changed": changed,
        "report": None if report is None else str(report.kind),
        "agent_state": None if state is None else str(state.state),
    }


def _check_text(value: Any, loc: tuple[str | int, ...]) -> None:
    """422 naming the field if any text in the payload cannot be stored (surrogates, NUL)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise RequestValidationError([{"loc": loc, "msg": problem, "type": "value_error"}])
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_text(name, loc)
            _check_text(item, (*loc, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, (*loc, index))


# Deprecated: the URL agentpty gave Claude Code before hooks became agent-agnostic.
router.add_api_route("/claude/{project_id}", agent_hook, methods=["POST"], include_in_schema=False)
