"""Hostile clients against a real ``agentpty serve`` process on loopback.

Bounded in count and time: a few hundred connections, bodies that the server
must refuse after a few megabytes at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import TOKEN, start_server_process, timeout


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    base: str
    log: list[str]

    @property
    def port(self) -> int:
        return int(urlsplit(self.base).port or 0)

    def rss_kib(self) -> int:
        """The server's resident memory, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def http(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=timeout(30),
            **kwargs,  # type: ignore[arg-type]
        )


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, open_files: int | None = None, **env: str
) -> AsyncIterator[ServerProcess]:
    """``agentpty serve`` with ``env``; its log is drained (a full pipe would stall it).

    ``open_files``: the server's RLIMIT_NOFILE (soft and hard).
    """

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process, base = await start_server_process(
        {
            **os.environ,
            "AGENTPTY_DATA_DIR": str(tmp_path / "data"),
            "AGENTPTY_DEFAULT_AGENT": "shell",
            "SHELL": "/bin/sh",
            **env,
        },
        preexec_fn=limit,
    )
    log: list[str] = []

    async def drain() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            log.append(line.decode(errors="replace"))

    drainer = asyncio.create_task(drain())
    try:
        yield ServerProcess(process, base, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            await process.wait()
            await drainer


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """What the server answered before closing (empty if it reset the connection)."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def push_body(port: int, head: bytes, chunk: bytes, total: int) -> bytes:
    """Send ``head`` then up to ``total`` bytes of ``chunk``s until the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        answer = asyncio.create_task(read_response(reader))
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < total and not answer.done():
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        async with asyncio.timeout(timeout(30)):
            return await answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_huge_bodies_without_credentials_are_never_read(tmp_path: Path) -> None:
    """200 MB bodies without a token (JSON, text, chunked, hook) get 401; RSS grows < 20 MiB."""
    async with running(tmp_path) as server:
        async with server.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "p"})).json()["id"]
        before = server.rss_kib()
        size = 200 * 1024 * 1024
        chunk = b"x" * (1024 * 1024)
        heads = [
            f"POST /api/output-projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
            f"POST /api/output-projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {size}\r\n\r\n",
            f"POST /api/hooks/claude/{project}?key=wrong HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
        ]
        answers = await asyncio.gather(
            *(push_body(server.port, head.encode(), chunk, size) for head in heads)
        )
        chunked = await push_body(
            server.port,
            b"POST /api/output-projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"100000\r\n" + chunk + b"\r\n",
            size,
        )
        grown = server.rss_kib() - before
        for answer in [*answers, chunked]:
            # A reset before the answer is read is allowed; an answer must be 401.
            assert not answer or answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert any(answers), "at least one client read its 401"
        assert grown < 20 * 1024, f"server RSS grew {grown} KiB"
        async with server.http() as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    """An authenticated body over AGENTPTY_MAX_BODY_BYTES gets 413, declared or chunked."""
    async with (
        running(tmp_path, AGENTPTY_MAX_BODY_BYTES="65536") as server,
        server.http() as http,
    ):
        big = {"name": "x" * 100_000}
        declared = await http.post("/api/output-projects", json=big)
        assert declared.status_code == 413
        assert "AGENTPTY_MAX_BODY_BYTES" in declared.json()["detail"]

        async def stream() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(10):
                yield b"x" * 10_000
            yield b'"}'

        chunked = await http.post(
            "/api/output-projects",
            content=stream(),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
        small = await http.post("/api/output-projects", json={"name": "fits"})
        assert small.status_code == 201


async def open_slow(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections that each send half a request line and stop."""
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        connections.append((reader, writer))
    return connections


async def test_slow_headers_are_cut_off_and_the_api_stays_answerable(tmp_path: Path) -> None:
    """Slow-header connections are closed after the timeout (or to make room at the cap),
    while an authenticated client is answered throughout."""
    header_timeout = timeout(2)
    env = {"AGENTPTY_HEADER_TIMEOUT": str(header_timeout), "AGENTPTY_MAX_CONNECTIONS": "100"}
    async with running(tmp_path, **env) as server:
        slow = await open_slow(server.port, 300)
        try:
            async with server.http() as http:
                # Answered while 300 slow connections press against a cap of 100.
                for _ in range(3):
                    response = await http.get("/api/output-projects")
                    assert response.status_code == 200
                    slow += await open_slow(server.port, 20)  # the attack goes on

            async def closed(reader: asyncio.StreamReader) -> bytes:
                return await read_response(reader)

            async with asyncio.timeout(header_timeout + timeout(20)):
                answers = await asyncio.gather(*(closed(reader) for reader, _ in slow))
            assert all(not a or a.startswith(b"HTTP/1.1 408") for a in answers)
            assert any(answers)
        finally:
            for _, writer in slow:
                writer.close()
        async with server.http() as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_csrf_and_rebinding_are_refused(tmp_path: Path) -> None:
    """Cookie POSTs from a foreign or no Origin get 403, a foreign Host 400; Bearer passes."""
    async with running(tmp_path, AGENTPTY_ALLOWED_HOSTS="box.lan") as server:
        async with server.http() as http:
            project = (await http.post("/api/output-projects", json={"name": "p"})).json()["id"]
            milestone = (
                await http.post(
                    "/api/milestones", json={"output_project_id": project, "title": "t"}
                )
            ).json()["id"]
        host = f"127.0.0.1:{server.port}"
        cookie = {"Cookie": f"agentpty_token={TOKEN}", "Host": host}
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with httpx.AsyncClient(base_url=server.base, timeout=timeout(30)) as raw:
            for path in (
                f"/api/output-projects/{project}/session",
                f"/api/milestones/{milestone}/complete",
            ):
                for origin in ("http://127.0.0.1:9999", "null", None):
                    headers = {**cookie, **form, **({"Origin": origin} if origin else {})}
                    refused = await raw.post(path, headers=headers)
                    assert refused.status_code == 403, (path, origin, refused.text)
                    assert "cross-site" in refused.json()["detail"]
            same_site = await raw.get(f"/api/output-projects/{project}/session", headers=cookie)
            assert same_site.status_code == 200  # reads need no Origin
            own = await raw.post(
                f"/api/milestones/{milestone}/fail",
                headers={**cookie, "Origin": f"http://{host}"},
            )
            assert own.status_code == 200, own.text
            bearer = await raw.delete(
                f"/api/output-projects/{project}/session",
                headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"},
            )
            assert bearer.status_code == 200

            for bad in (f"evil.example:{server.port}", "evil.example", "127.0.0.1.nip.io"):
                rebound = await raw.get(
                    "/api/output-projects",
                    headers={"Host": bad, "Authorization": f"Bearer {TOKEN}"},
                )
                assert rebound.status_code == 400, bad
                assert "AGENTPTY_ALLOWED_HOSTS" in rebound.json()["detail"]
            for good in (host, f"localhost:{server.port}", "box.lan", f"[::1]:{server.port}"):
                ok = await raw.get(
                    "/api/output-projects",
                    headers={"Host": good, "Authorization": f"Bearer {TOKEN}"},
                )
                assert ok.status_code == 200, good


async def test_repeated_wrong_tokens_are_slowed_down(tmp_path: Path) -> None:
    """After a failed token an address gets 429 with Retry-After; later the token works."""
    # 0.25 a second: a burst of one, then one attempt every 4 s (a margin under load).
    async with running(tmp_path, AGENTPTY_AUTH_FAILURE_RATE="0.25") as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=timeout(30)) as raw:
            statuses = []
            for n in range(3):
                response = await raw.get(
                    "/api/output-projects", headers={"Authorization": f"Bearer wrong-{n}"}
                )
                statuses.append(response.status_code)
            assert statuses == [401, 429, 429], statuses
            assert "retry in" in response.json()["detail"]
            throttled = await raw.get(
                "/api/output-projects", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert throttled.status_code == 429  # a correct guess would be no different
            assert int(throttled.headers["retry-after"]) >= 1
            await asyncio.sleep(float(throttled.headers["retry-after"]))
        async with server.http() as http:
            assert (await http.get("/api/output-projects")).status_code == 200


@pytest.mark.parametrize("token", ["a", "fifteen-chars!!"])
async def test_weak_token_is_refused_at_start(tmp_path: Path, token: str) -> None:
    """A token under 16 characters stops the server at start with one line saying why."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentpty",
        "serve",
        env={**os.environ, "AGENTPTY_TOKEN": token, "AGENTPTY_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout(30)):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1 and "at least 16" in lines[0], lines


async def test_connection_flood_under_a_low_open_files_limit(tmp_path: Path) -> None:
    """With 500 descriptors, 400 slow connections never make accept() fail (EMFILE):
    the cap is fitted to the limit, and an authenticated request is answered."""
    async with running(tmp_path, open_files=500) as server:
        slow = []
        try:
            for _ in range(4):
                slow += await open_slow(server.port, 100)
                async with server.http() as http:
                    assert (await http.get("/api/output-projects")).status_code == 200
        finally:
            for _, writer in slow:
                writer.close()
    log = "".join(server.log)
    assert "holds only" in log  # the cap was lowered to fit the limit
    assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]
