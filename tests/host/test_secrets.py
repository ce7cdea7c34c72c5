"""An agent cannot read the server's token through /proc."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import TOKEN, make_settings, serve
from tests.host.hostutil import server_process


async def test_agent_cannot_read_the_token_from_proc(data_dir: Path) -> None:
    """Neither ``/proc/$PPID/environ`` nor the server's own environ shows the token."""
    half = len(TOKEN) // 2
    async with server_process(data_dir) as server:
        async with server.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "s"})).json()["id"]
        async with server.terminal(project) as term:
            await term.recv_type("status")
            # The token is assembled in the shell, so the typed line never contains it.
            await term.type(
                f"T={TOKEN[:half]}; T=$T{TOKEN[half:]}; "
                f"echo RES''ULT parent=$(grep -ac \"$T\" /proc/$PPID/environ) "
                f'server=$(grep -ac "$T" /proc/{server.process.pid}/environ 2>/dev/null) '
                f"isserver=$([ $PPID = {server.process.pid} ] && echo yes || echo no) end''-mark\r"
            )
            output = await term.read_until("end-mark")
        result = output[output.index("RESULT") :]
        assert "parent=0 " in result and "isserver=no" in result, result
        # 0 matches, or nothing readable at all (non-dumpable, no CAP_SYS_PTRACE).
        assert "server=0 " in result or "server= " in result, result
        assert TOKEN not in output


async def test_agent_cannot_drive_the_session_host(data_dir: Path) -> None:
    """A process of a session connecting to the host's socket is cut off before any reply."""
    async with serve(make_settings(data_dir)) as server:
        project = await server.create_project()
        probe = (
            "import json,socket,struct; s=socket.socket(socket.AF_UNIX); s.connect('host.sock'); "
            "p=json.dumps({'id':1,'op':'list'}).encode(); "
            "s.sendall(struct.pack('>IB',len(p),1)+p); print('REP'+'LY', len(s.recv(65536)))"
        )
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.type(
                f'cd {data_dir / "run"} && python3 -c "{probe}"; echo PROBE-$((40+2))\r'
            )
            output = await term.read_until("PROBE-42")
        result = output[output.rindex("REP'+'LY") :]
        # Cut off by the host (reset while sending or reading, or closed): no reply.
        refusals = ("ConnectionResetError", "BrokenPipeError", "REPLY 0\r\n")
        assert any(refusal in result for refusal in refusals), result
        assert "REPLY " not in result.replace("REPLY 0", ""), result
        # The host still serves its server.
        async with server.terminal(project) as term:
            await term.recv_type("status")
            await term.type("echo still-here\r")
            await term.read_until("still-here\r\n")
