"""Reports from agents' hooks (Claude Code's SessionStart): the conversation id changed."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ConfigDict, Field

from agentpty.api.bodies import RequestBody
from agentpty.api.deps import services
from agentpty.service.container import Services

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/hooks", tags=["hooks"])


class HookEvent(RequestBody):
    model_config = ConfigDict(extra="allow")
    session_id: str = Field(max_length=256)
    hook_event_name: str | None = Field(None, max_length=256)
    source: str | None = Field(None, max_length=256)


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
    changed = await svc.sessions.report_hook(
        project_id, event.hook_event_name, event.session_id, event.source
    )
    return {"changed": changed}
