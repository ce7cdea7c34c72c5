from tests.helpers import RunningServer


async def test_shell_echo_through_websocket(server: RunningServer) -> None:
    """Input typed through the WebSocket reaches the shell and its output comes back."""
    project = await server.create_project()
    async with server.terminal(project) as term:
        status = await term.recv()
        assert status["type"] == "status" and status["state"] == "running"
        await term.type("echo smoke-$((40+2))\r")
        await term.read_until("smoke-42")
