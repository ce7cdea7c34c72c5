"""REST: output projects and their terminal sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from agentpty.api.bodies import Limit, RequestBody, Skip
from agentpty.api.deps import services
from agentpty.domain.errors import InvalidInput
from agentpty.domain.models import OutputProject
from agentpty.service.container import Services

__all__ = ["router"]

router = APIRouter(prefix="/api/output-projects", tags=["output projects"])
Svc = Annotated[Services, Depends(services)]


class ProjectCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    agent: str | None = Field(None, description="agent profile; default: the server's")
    workspace_path: str | None = Field(
        None, description="folder under the workspaces root; default: <root>/<slug>-<short id>"
    )
    webhook_url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^https?://",
        description="this project's state changes are also POSTed here (signed JSON)",
    )


class SessionInput(RequestBody):
    nul_allowed = frozenset({"text"})  # a keystroke (Ctrl-@)

    text: str = Field(max_length=1024 * 1024)
    submit: bool = True


class SessionStart(RequestBody):
    rows: int = Field(24, ge=1, le=1000)
    cols: int = Field(80, ge=1, le=1000)


async def _describe(svc: Services, project: OutputProject) -> dict[str, Any]:
    """The project with its milestone counts, its session's state and its agent's state."""
    described = await svc.projects.describe(project)
    # h12 call site: the live agent state (agent_state, state_since, state_detail).
    described.update((await svc.states.view(project.id)).fields())
    return {**described, "session": svc.sessions.info(project.id)}


@router.post("", status_code=201)
async def create_project(body: ProjectCreate, svc: Svc) -> dict[str, Any]:
    project = await svc.projects.create(body.name, body.agent, body.workspace_path)
    if body.webhook_url is not None:
        project = await svc.store.update_project(project.id, webhook_url=body.webhook_url)
    return await _describe(svc, project)


@router.get("")
async def list_projects(
    svc: Svc,
    skip: Skip = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    projects, total = await svc.projects.list(skip, limit)
    items = [await _describe(svc, project) for project in projects]
    return {"output_projects": items, "total": total}


@router.get("/{project_id}")
async def get_project(project_id: str, svc: Svc) -> dict[str, Any]:
    return await _describe(svc, await svc.projects.get(project_id))


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: str, svc: Svc) -> Response:
    await svc.delete_project(project_id)
    return Response(status_code=204)


@router.get("/{project_id}/session")
async def get_session(project_id: str, svc: Svc) -> dict[str, Any]:
    await svc.projects.get(project_id)
    return svc.sessions.info(project_id)


@router.post("/{project_id}/session")
async def ensure_session(
    project_id: str, svc: Svc, body: SessionStart | None = None
) -> dict[str, Any]:
    project = await svc.projects.get(project_id)
    size = body or SessionStart()
    _, started = await svc.sessions.ensure(project, rows=size.rows, cols=size.cols)
    return {**svc.sessions.info(project_id), "started": started}


@router.delete("/{project_id}/session")
async def stop_session(project_id: str, svc: Svc) -> dict[str, Any]:
    await svc.projects.get(project_id)
    exit_code = await svc.sessions.stop(project_id)
    return {**svc.sessions.info(project_id), "stopped": exit_code is not None}


@router.post("/{project_id}/session/input")
async def session_input(project_id: str, body: SessionInput, svc: Svc) -> dict[str, Any]:
    if not body.text and not body.submit:
        raise InvalidInput("nothing to send: give text, or submit=true for Enter")
    project = await svc.projects.get(project_id)
    result = await svc.commands.send(project, body.text, submit=body.submit)
    return {"outcome": str(result.outcome), "reason": result.reason, "delivered": result.ok}


@router.get("/{project_id}/events")
async def list_events(project_id: str, svc: Svc) -> dict[str, Any]:
    await svc.projects.get(project_id)
    events = await svc.store.list_events(project_id)
    return {"events": [event.model_dump(mode="json") for event in events], "total": len(events)}
