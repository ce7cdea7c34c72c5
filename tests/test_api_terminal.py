"""The WebSocket terminal end to end: real server, real sockets, real shells."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentpty.terminal.session import SessionLimits
from tests.helpers import RunningServer, timeout, wait_foreground


async def test_two_clients_share_output_and_either_can_type(server: RunningServer) -> None:
    """Both clients see the same output; input from either reaches the process."""
    project = await server.create_project()
    async with server.terminal(project) as a, server.terminal(project) as b:
        status_a, status_b = await a.recv(), await b.recv()
        assert status_a["pid"] == status_b["pid"]
        await a.type("echo from-a-$((1+1))\r")
        await a.read_until("from-a-2")
        await b.read_until("from-a-2")
        await b.type("echo from-b-$((2+2))\r")
        await a.read_until("from-b-4")
        await b.read_until("from-b-4")


async def test_reconnect_gets_the_screen_back(server: RunningServer) -> None:
    """A client that leaves and comes back sees the earlier output in its snapshot."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        first = await term.recv()
        await term.type("echo keep-$((20+3))\r")
        await term.read_until("keep-23")
    async with server.terminal(project) as again:
        status = await again.recv()
        assert status["type"] == "status" and status["pid"] == first["pid"]
        snapshot = await again.recv()
        assert snapshot["type"] == "output"
        assert "keep-23" in snapshot["data"]


async def test_concurrent_first_attaches_start_one_process(server: RunningServer) -> None:
    """Twenty clients attaching at once to a fresh project share one process."""
    project = await server.create_project()

    async def attach() -> int:
        async with server.terminal(project) as term:
            status = await term.recv()
            return int(status["pid"])

    pids = await asyncio.gather(*(attach() for _ in range(20)))
    assert len(set(pids)) == 1
    events = await server.services.store.list_events(project)
    assert [e.kind for e in events].count("started") == 1


async def test_exit_sends_closed_and_next_attach_starts_again(server: RunningServer) -> None:
    """When the process exits clients get `closed` with the code; the next attach restarts."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        first = await term.recv()
        await term.type("exit 5\r")
        closed = await term.recv_type("closed")
        assert closed["exit_code"] == 5
    async with server.terminal(project) as term:
        status = await term.recv()
        assert status["state"] == "running" and status["pid"] != first["pid"]


async def test_signal_message_interrupts(server: RunningServer) -> None:
    """A `signal` SIGINT message interrupts the foreground job."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        status = await term.recv()
        await term.type("sleep 100\r")
        await wait_foreground(status["pid"], "sleep")
        await term.send(type="signal", signal="SIGINT")
        await term.type("echo rc-$?\r")
        await term.read_until("rc-130")


async def test_resize_message_reaches_the_child(server: RunningServer) -> None:
    """A `resize` message changes what `stty size` prints."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        await term.recv()
        await term.send(type="resize", rows=40, cols=132)
        await term.type("stty size\r")
        await term.read_until("40 132")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "INVALID_JSON"),
        ('["input"]', "INVALID_MESSAGE"),
        ('{"type": "teleport"}', "UNKNOWN_TYPE"),
        ('{"type": "input"}', "INVALID_MESSAGE"),
        ('{"type": "resize", "rows": 0, "cols": 80}', "INVALID_MESSAGE"),
        ('{"type": "resize", "rows": 24, "cols": 1001}', "INVALID_MESSAGE"),
        ('{"type": "signal", "signal": "SIGKILL"}', "INVALID_MESSAGE"),
        (json.dumps({"type": "input", "data": "x" * 70000}), "FRAME_TOO_LARGE"),
    ],
)
async def test_bad_messages_get_errors_and_the_session_goes_on(
    server: RunningServer, frame: str, code: str
) -> None:
    """Each bad frame gets an `error` with a code and a reason; the connection still works."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        await term.recv()
        await term.ws.send(frame)
        error = await term.recv_type("error")
        assert error["code"] == code and error["message"]
        await term.type("echo still-$((3*3))\r")
        await term.read_until("still-9")


async def test_binary_frame_is_an_error_not_a_crash(server: RunningServer) -> None:
    """A binary frame that is not JSON gets an error; the session lives on."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        await term.recv()
        await term.ws.send(b"\xff\xfe")
        assert (await term.recv_type("error"))["code"] == "INVALID_JSON"


async def close_code(server: RunningServer, path: str, **kwargs: object) -> tuple[int, str]:
    async with websockets.connect(server.ws_url + path, **kwargs) as ws:  # type: ignore[arg-type]
        frames = []
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(timeout(10)):
                while True:
                    frames.append(await ws.recv())
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_missing_or_wrong_token_closes_4001(server: RunningServer) -> None:
    """No token, or a wrong one: the socket is closed with 4001."""
    project = await server.create_project()
    path = f"/api/output-projects/{project}/terminal"
    assert (await close_code(server, path))[0] == 4001
    assert (await close_code(server, path + "?token=nope"))[0] == 4001


async def test_foreign_origin_closes_4003(server: RunningServer) -> None:
    """A browser page from another origin cannot attach."""
    project = await server.create_project()
    path = f"/api/output-projects/{project}/terminal?token={server.token}"
    code, _ = await close_code(server, path, origin="http://evil.example")  # type: ignore[arg-type]
    assert code == 4003
    own = server.base_url
    async with server.terminal(project, origin=own) as term:
        assert (await term.recv())["type"] == "status"


async def test_unknown_and_malformed_ids(server: RunningServer) -> None:
    """An unknown project closes 4004 after an error; a malformed id closes 4000."""
    code, _ = await close_code(
        server, f"/api/output-projects/{'f' * 32}/terminal?token={server.token}"
    )
    assert code == 4004
    code, _ = await close_code(
        server, f"/api/output-projects/bad%20id!/terminal?token={server.token}"
    )
    assert code == 4000


async def test_closing_the_socket_leaves_the_process_running(server: RunningServer) -> None:
    """Disconnecting every client does not stop the process."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        pid = (await term.recv())["pid"]
    async with server.http() as http:
        info = (await http.get(f"/api/output-projects/{project}/session")).json()
    assert info["state"] == "running" and info["pid"] == pid and info["clients"] == 0


async def test_slow_client_does_not_stall_a_fast_one(server: RunningServer) -> None:
    """A client that stops reading is resynced; the other one still gets everything."""
    server.services.sessions.limits = SessionLimits(subscriber_backlog=256 * 1024)
    project = await server.create_project()
    # A tiny receive buffer; still, the kernel's send buffer (up to 4 MiB) takes
    # some, so the output is much larger than all the buffers together.
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tiny.connect(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])))
    slow_terminal = server.terminal(project, max_queue=1, sock=tiny)
    async with slow_terminal as slow, server.terminal(project) as fast:
        await slow.recv()
        await fast.recv()
        await fast.type("seq 1 3000000; echo DONE-$((7*6))\r")
        await fast.read_until("DONE-42", wait=60)
        assert "\n2999999\r\n" in fast.output
        live = server.services.sessions.current(project)
        assert live is not None
        # The stalled client's queue overflowed and it was switched to a snapshot.
        terminal = live.terminal
        assert any(sub.resyncs for sub in terminal._subscribers)


async def test_pty_follows_the_most_recently_active_client(server: RunningServer) -> None:
    """With several viewers the size is that of the last one to resize or type."""
    project = await server.create_project()
    token = f"token={server.token}"
    async with (
        server.terminal(project, query=f"{token}&rows=30&cols=100") as small,
        server.terminal(project, query=f"{token}&rows=40&cols=120") as large,
        server.terminal(project) as undeclared,
    ):
        for term in (small, large, undeclared):
            await term.recv()
        await small.type("stty size\r")
        await small.read_until("30 100")
        await large.type("stty size\r")
        await large.read_until("40 120")
        await undeclared.type("echo $((6*7)) && stty size\r")
        await undeclared.read_until("42\r\n40 120")
