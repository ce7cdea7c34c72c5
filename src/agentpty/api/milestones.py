"""REST and WebSocket: milestones of output projects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, WebSocket
from pydantic import Field

from agentpty.api.bodies import Limit, RequestBody, Skip
from agentpty.api.deps import services
from agentpty.api.terminal import attach, open_terminal_socket
from agentpty.domain.errors import AgentptyError
from agentpty.domain.models import Milestone, MilestoneStatus
from agentpty.service.confirmed_delivery import Delivery
from agentpty.service.container import Services
from agentpty.service.milestones import MAX_CONTEXT, MAX_TITLE
from agentpty.terminal.protocol import CloseCode, error_frame

__all__ = ["router", "ws_router"]

router = APIRouter(prefix="/api/milestones", tags=["milestones"])
ws_router = APIRouter()
Svc = Annotated[Services, Depends(services)]


class MilestoneCreate(RequestBody):
    output_project_id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    context: str = Field("", max_length=MAX_CONTEXT, description="markdown, at most 1 MiB")


def _with_delivery(milestone: Milestone, result: Delivery) -> dict[str, Any]:
    """The milestone and ``delivery``: outcome delivered | refused | not_ready | unconfirmed."""
    return {**milestone.model_dump(mode="json"), "delivery": result.as_json()}


@router.post("", status_code=201)
async def create_milestone(body: MilestoneCreate, svc: Svc) -> Milestone:
    return await svc.milestones.create(body.output_project_id, body.title, body.context)


@router.get("")
async def list_milestones(
    svc: Svc,
    output_project_id: str | None = None,
    status: MilestoneStatus | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    milestones, total = await svc.milestones.list(output_project_id, status, skip, limit)
    return {"milestones": milestones, "total": total}


@router.get("/{milestone_id}")
async def get_milestone(milestone_id: str, svc: Svc) -> Milestone:
    return await svc.milestones.get(milestone_id)


@router.delete("/{milestone_id}", status_code=204)
async def delete_milestone(milestone_id: str, svc: Svc) -> Response:
    await svc.milestones.delete(milestone_id)
    return Response(status_code=204)


@router.post("/{milestone_id}/start")
async def start_milestone(milestone_id: str, svc: Svc) -> dict[str, Any]:
    """Deliver the milestone's command; ``delivery.outcome`` says if it arrived.

    On failure the milestone stays pending and ``status_reason`` says why.
    """
    milestone, result = await svc.milestones.start(milestone_id)
    return _with_delivery(milestone, result)


@router.post("/{milestone_id}/complete")
async def complete_milestone(milestone_id: str, svc: Svc) -> Milestone:
    return await svc.milestones.transition(milestone_id, MilestoneStatus.COMPLETED)


@router.post("/{milestone_id}/fail")
async def fail_milestone(milestone_id: str, svc: Svc) -> Milestone:
    return await svc.milestones.transition(milestone_id, MilestoneStatus.FAILED)


@ws_router.websocket("/api/milestones/{milestone_id}/terminal")
async def milestone_terminal(websocket: WebSocket, milestone_id: str) -> None:
    """Attach to the milestone's project session; a pending milestone is started."""
    svc = await open_terminal_socket(websocket, milestone_id)
    if svc is None:
        return
    try:
        milestone = await svc.milestones.get(milestone_id)
        if milestone.status in (MilestoneStatus.COMPLETED, MilestoneStatus.FAILED):
            await websocket.send_text(
                error_frame(
                    "ALREADY_FINISHED",
                    f"milestone is {milestone.status}; attach to its project's terminal instead",
                )
            )
            await websocket.close(CloseCode.NOT_FOUND, "milestone already finished")
            return
        project = await svc.projects.get(milestone.output_project_id)
    except AgentptyError as exc:
        await websocket.send_text(error_frame(exc.code, exc.message))
        await websocket.close(CloseCode.NOT_FOUND, "no such milestone")
        return
    if milestone.status == MilestoneStatus.PENDING:
        svc.spawn(svc.milestones.start(milestone.id), f"start milestone {milestone.id}")
    await attach(websocket, svc, project)
