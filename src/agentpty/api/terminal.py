"""WebSocket terminal: attach a client to a project's terminal session.

Protocol in ``terminal/protocol.py``. The two pumps (session → client and
client → session) run in one task group; when either ends the other is
cancelled. Closing the socket never stops the process.

The output pump sends one frame at a time and each send waits until the
connection's transport is below its high-water mark (uvicorn's sans-I/O
websockets protocol does that), so a client that stops reading holds at most
one frame here; the rest waits in its ``Subscriber``, which is bounded and
resynchronises the client from a snapshot when it overflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from agentpty.api.auth import origin_allowed, token_valid
from agentpty.api.bodies import text_problem
from agentpty.api.deps import services
from agentpty.api.guard import client_address
from agentpty.domain.errors import AgentptyError, NotFound
from agentpty.domain.models import OutputProject
from agentpty.service.container import Services
from agentpty.service.sessions import LiveTerminal
from agentpty.terminal.client_messages import InputMessage, ResizeMessage, parse_client_message
from agentpty.terminal.protocol import (
    BINARY,
    CloseCode,
    ProtocolError,
    choose_subprotocol,
    closed_frame,
    error_frame,
    output_frame,
    state_frame,
    status_frame,
)

__all__ = ["attach", "open_terminal_socket", "router"]

log = logging.getLogger(__name__)
router = APIRouter()
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: RFC 6455 close code: the server hit an unexpected condition.
INTERNAL_ERROR = 1011


async def open_terminal_socket(websocket: WebSocket, entity_id: str) -> Services | None:
    """Accept, then refuse with a close code unless token, origin and id are good.

    The dialect is agreed here (``Sec-WebSocket-Protocol``); JSON unless the
    client offers the binary one.
    """
    await websocket.accept(subprotocol=choose_subprotocol(websocket.scope.get("subprotocols", ())))
    if not token_valid(websocket):
        websocket.app.state.throttle.failed(client_address(websocket.scope))
        await websocket.close(CloseCode.UNAUTHORIZED, "missing or wrong token")
        return None
    if not origin_allowed(websocket):
        await websocket.close(CloseCode.ORIGIN_REFUSED, "origin not allowed")
        return None
    if not ID_PATTERN.match(entity_id):
        await websocket.close(CloseCode.BAD_ID, "malformed id")
        return None
    return services(websocket)


def _binary(websocket: WebSocket) -> bool:
    """Whether this connection agreed on binary output frames."""
    return choose_subprotocol(websocket.scope.get("subprotocols", ())) == BINARY


def _size(websocket: WebSocket) -> tuple[int, int] | None:
    """The size a client declares with ``?rows=&cols=`` (clamped), else None."""
    try:
        rows = int(websocket.query_params["rows"])
        cols = int(websocket.query_params["cols"])
    except (KeyError, ValueError):
        return None
    return min(max(rows, 1), 1000), min(max(cols, 1), 1000)


async def project_terminal(websocket: WebSocket) -> None:
    project_id = str(websocket.path_params["project_id"])
    svc = await open_terminal_socket(websocket, project_id)
    if svc is None:
        return
    try:
        project = await svc.projects.get(project_id)
    except NotFound as exc:
        await websocket.send_text(error_frame(exc.code, exc.message))
        await websocket.close(CloseCode.NOT_FOUND, "no such output project")
        return
    await attach(websocket, svc, project)


# A plain Starlette route: FastAPI's websocket routing keeps a dependency-solving
# context (an exit stack and its frames) alive for the whole connection, about
# 6 KiB per attached client, and this endpoint has no dependencies to solve.
router.add_websocket_route("/api/output-projects/{project_id}/terminal", project_terminal)


async def attach(websocket: WebSocket, svc: Services, project: OutputProject) -> None:
    """Start or resume the project's session and relay it until either side ends."""
    size = _size(websocket)
    rows, cols = size or (24, 80)
    try:
        live, started = await svc.sessions.ensure(project, rows=rows, cols=cols)
    except AgentptyError as exc:
        await websocket.send_text(error_frame(exc.code, exc.message))
        await websocket.close(CloseCode.START_FAILED, "session could not start")
        return
    current: LiveTerminal | None = live
    # The client that started a replacement of an expired conversation is told.
    announce = started and live.replaced is not None
    try:
        while current is not None:
            current = await _relay(websocket, svc, current, started, size, announce)
            started = announce = True
    except WebSocketDisconnect:
        return  # the client went away: normal, the session goes on
    except Exception as exc:
        if isinstance(exc, OSError | RuntimeError) and _gone(websocket):
            # Starlette raises these when sending on a socket the client closed.
            log.debug("project %s: client gone while sending: %s", project.id, exc)
            return
        log.error("project %s: terminal relay failed", project.id, exc_info=exc)
        await _close_quietly(websocket, INTERNAL_ERROR, "internal error; see the server log")
        return
    if websocket.client_state == WebSocketState.CONNECTED:
        await websocket.close(CloseCode.NORMAL, "process exited")


def _gone(websocket: WebSocket) -> bool:
    return WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state)


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    if not _gone(websocket):
        # It may go away meanwhile.
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await websocket.close(code, reason)


async def _relay(
    websocket: WebSocket,
    svc: Services,
    live: LiveTerminal,
    started: bool,
    size: tuple[int, int] | None,
    announce_expiry: bool,
) -> LiveTerminal | None:
    """Relay one session; return the session that replaced it, if its conversation expired.

    Sends ``status``, the screen snapshot, then (``announce_expiry``) the
    SESSION_EXPIRED error, then live output.
    """
    terminal = live.terminal
    subscriber, snapshot = terminal.subscribe()
    client_size = size
    # h12 call site: the project's agent state, now and on every change.
    states, _, _ = svc.bus.subscribe(
        accept=lambda event: event.type == "state" and event.project_id == live.project_id,
        on_event=subscriber.nudge,
    )
    binary = _binary(websocket)
    try:
        await websocket.send_text(status_frame(**live.status()))
        if binary:
            await websocket.send_bytes(snapshot.encode())
        else:
            await websocket.send_text(output_frame(snapshot))
        if announce_expiry:
            await websocket.send_text(error_frame("SESSION_EXPIRED", _expired_message(live)))
        view = await svc.states.view(live.project_id)
        await websocket.send_text(state_frame({"project_id": live.project_id, **view.fields()}))
        if terminal.alive and (not started or (client_size and terminal.size != client_size)):
            # Full-screen TUIs only repaint on SIGWINCH: send one even if unchanged.
            terminal.resize(*(client_size or terminal.size))

        async def pump_out() -> None:
            # Hot path. Binary clients get the PTY's bytes as they are; JSON
            # clients get them decoded once per frame. A state change nudges.
            while True:
                frame = await subscriber.get()
                if frame.kind == "output":
                    if binary:
                        await websocket.send_bytes(frame.data)
                    else:
                        await websocket.send_text(output_frame(frame.text))
                elif frame.kind == "nudge":
                    for event in states.pending():
                        await websocket.send_text(state_frame(event.payload()))
                else:
                    raise _OutputEnded

        async def pump_in() -> None:
            nonlocal client_size
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                raw = message.get("text")
                if raw is None:
                    raw = message.get("bytes") or b""
                try:
                    parsed = parse_client_message(raw)
                    if isinstance(parsed, InputMessage):
                        problem = text_problem(parsed.data, allow_nul=True)
                        if problem is not None:
                            raise ProtocolError("INVALID_MESSAGE", f"field 'data' {problem}")
                        # The PTY follows the most recently active client (that declared a size).
                        if client_size and terminal.size != client_size and terminal.alive:
                            terminal.resize(*client_size)
                        terminal.send_input(parsed.data)
                    elif isinstance(parsed, ResizeMessage):
                        client_size = (parsed.rows, parsed.cols)
                        if terminal.alive:
                            terminal.resize(parsed.rows, parsed.cols)
                    else:
                        terminal.send_signal(parsed.signal)
                except ProtocolError as exc:
                    await websocket.send_text(error_frame(exc.code, exc.message))
                except AgentptyError as exc:
                    await websocket.send_text(error_frame(exc.code, exc.message))
                except (ValueError, OSError) as exc:
                    # A frame the checks above missed: the client hears of it, the
                    # log keeps the trace, the session goes on.
                    log.warning("terminal frame failed: %r", exc, exc_info=exc)
                    await websocket.send_text(
                        error_frame("INVALID_MESSAGE", f"frame could not be used: {exc}")
                    )

        try:
            # The first pump to end (by raising) ends the others: no waiter
            # set per connection (an idle server holds hundreds of these).
            async with asyncio.TaskGroup() as group:
                group.create_task(pump_out())
                group.create_task(pump_in())
        except BaseExceptionGroup as group_exc:
            errors = [e for e in group_exc.exceptions if not isinstance(e, _OutputEnded)]
            if errors:
                # Unwrap: callers handle a disconnect like any other.
                raise errors[0] from None
    except BaseException:
        terminal.unsubscribe(subscriber)
        states.close()  # the client went away: no more state for it
        raise
    terminal.unsubscribe(subscriber)
    try:
        # A process replaced after its conversation expired is not an end for the
        # client: it gets the new session's status instead of `closed`.
        successor = await live.successor
        # The exit handler has run: the client also learns the state it left (exited).
        for event in states.pending():
            await websocket.send_text(state_frame(event.payload()))
    finally:
        states.close()
    if successor is None and not terminal.alive:
        await websocket.send_text(closed_frame(terminal.exit_code))
    return successor


class _OutputEnded(Exception):
    """The session's output ended (its process exited): the relay is over."""


def _expired_message(fresh: LiveTerminal) -> str:
    old = (fresh.replaced or "")[:8]
    return (
        f"conversation {old} could not be resumed (the agent no longer has it); "
        f"started a fresh conversation {(fresh.conversation_id or '')[:8]}"
    )
