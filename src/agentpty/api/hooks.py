"""Reports from agents' hooks, posted by ``agentpty hook`` for the agent's project.

The body is the agent's own hook payload; its profile translates it
(``HookSupport.parse``); the report moves the conversation id and the
agent state. Authenticated by the per-project key in the URL agentpty gave
the agent, not by the API token.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from agentpty.api.bodies import text_problem
from agentpty.api.deps import services
from agentpty.service.container import Services

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/hooks", tags=["hooks"])


@router.post("/{project_id}")
async def agent_hook(
    project_id: str,
    payload: Annotated[dict[str, Any], Body()],
    key: Annotated[str, Query(max_length=128)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Apply one hook report: the stored conversation id and the agent state follow it."""
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
