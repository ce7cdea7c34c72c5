"""REST: headless runs of an output project's conversation, with an SSE event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import Field

from agentpty.api.bodies import RequestBody
from agentpty.api.deps import services
from agentpty.domain.errors import NotFound
from agentpty.domain.models import Run
from agentpty.service.container import Services
from agentpty.service.runs import MAX_PROMPT

__all__ = ["router"]

router = APIRouter(prefix="/api/output-projects/{project_id}/runs", tags=["headless runs"])
Svc = Annotated[Services, Depends(services)]


class RunCreate(RequestBody):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)


async def _run_of(svc: Services, project_id: str, run_id: str) -> Run:
    run = await svc.store.get_run(run_id)
    if run.output_project_id != project_id:
        raise NotFound(f"no run {run_id!r} in project {project_id!r}")
    return run


@router.post("", status_code=202)
async def start_run(project_id: str, body: RunCreate, svc: Svc) -> Run:
    """Run the agent's headless mode in the project's conversation (409 while a session is live)."""
    project = await svc.projects.get(project_id)
    return await svc.runs.start(project, body.prompt)


@router.get("")
async def list_runs(project_id: str, svc: Svc) -> dict[str, Any]:
    await svc.projects.get(project_id)
    runs = await svc.store.list_runs(project_id)
    return {"runs": runs, "total": len(runs)}


@router.get("/{run_id}")
async def get_run(project_id: str, run_id: str, svc: Svc) -> Run:
    return await _run_of(svc, project_id, run_id)


@router.get("/{run_id}/events")
async def run_events(project_id: str, run_id: str, svc: Svc) -> StreamingResponse:
    """Server-sent events: the agent's NDJSON events, then ``record`` (the final run)."""
    run = await _run_of(svc, project_id, run_id)

    async def stream() -> AsyncIterator[str]:
        async for event in svc.runs.events(run):
            kind = str(event.get("type", "message")).replace("\n", " ")
            yield f"event: {kind}\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")
