"""Reports from agents' hooks: the conversation id changed, and what the agent is doing."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from agentpty.api.deps import services
from agentpty.service.container import Services

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/hooks", tags=["hooks"])


class HookEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    session_id: str
    hook_event_name: str | None = None
    source: str | None = None


@router.post("/claude/{project_id}")
async def claude_hook(
    project_id: str,
    event: HookEvent,
    key: Annotated[str, Query(max_length=128)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Authenticated by the per-project key in the URL agentpty gave the agent."""
    if not svc.sessions.hook_key_valid(project_id, key):
        raise HTTPException(status_code=401, detail="wrong hook key for this project")
    log.info(
        "project %s: hook %s (source %s) session %s",
        project_id,
        event.hook_event_name,
        event.source,
        event.session_id,
    )
    changed = False
    if event.hook_event_name in ("SessionStart", "UserPromptSubmit"):
        changed = await svc.sessions.report_hook(
            project_id, event.hook_event_name, event.session_id, event.source
        )
    # h12 call site: the agent state (lead: re-point onto the profile's HookSupport).
    report = svc.claude_hooks.parse(event.model_dump())
    state = None if report is None else await svc.states.report(project_id, report)
    return {"changed": changed, "agent_state": None if state is None else str(state.state)}
