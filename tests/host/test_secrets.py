"""An agent cannot read the server's token through /proc."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import TOKEN
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
