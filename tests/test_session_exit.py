"""What waits on a session's exit (relays, command delivery) is always released."""

from __future__ import annotations

import asyncio

from tests.helpers import RunningServer, timeout


async def test_exit_handler_cancelled_before_it_ran_releases_waiters(
    server: RunningServer,
) -> None:
    """Shutdown can cancel an exit handler before its first step; waiters still get None."""
    project = await server.services.store.get_project(await server.create_project())
    live, _ = await server.services.sessions.ensure(project)
    handler: asyncio.Task[None] = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    handler.cancel()  # before it ever ran: no code inside the coroutine executes
    handler.add_done_callback(live.resolve_successor)
    async with asyncio.timeout(timeout(5)):
        assert await live.successor is None
    await server.services.sessions.stop(project.id)


async def test_failed_exit_handler_releases_waiters(server: RunningServer) -> None:
    """An exit handler that raised resolves the successor as None (the error is logged)."""
    project = await server.services.store.get_project(await server.create_project())
    live, _ = await server.services.sessions.ensure(project)

    async def broken() -> None:
        raise RuntimeError("store gone")

    handler = asyncio.get_running_loop().create_task(broken())
    handler.add_done_callback(live.resolve_successor)
    async with asyncio.timeout(timeout(5)):
        assert await live.successor is None
    await server.services.sessions.stop(project.id)


async def test_normal_exit_resolves_successor(server: RunningServer) -> None:
    """A process that exits on its own resolves the successor (None: nothing replaced it)."""
    project = await server.services.store.get_project(await server.create_project())
    live, _ = await server.services.sessions.ensure(project)
    live.terminal.send_input("exit 3\n")
    async with asyncio.timeout(timeout(10)):
        assert await live.successor is None
    assert live.terminal.exit_code == 3
