"""schemathesis against the server's own OpenAPI schema, with the token: no 5xx anywhere.

Bounded: a few examples per operation (``AGENTPTY_SCHEMATHESIS_EXAMPLES``) and
the fuzzing and stateful phases (``AGENTPTY_SCHEMATHESIS_PHASES``; add
``coverage`` for its boundary values, about 400 more requests).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import SCALE, TOKEN, timeout
from tests.test_abuse import running

#: The run itself is bounded at 180 s (scaled) below; pytest's limit must be above it.
pytestmark = [pytest.mark.schemathesis, pytest.mark.timeout(240 * SCALE)]

EXAMPLES = os.environ.get("AGENTPTY_SCHEMATHESIS_EXAMPLES", "5")
PHASES = os.environ.get("AGENTPTY_SCHEMATHESIS_PHASES", "fuzzing,stateful")
#: Links between operations come from schemathesis's dependency analysis only.
#: Its location-headers inference also scans 2xx bodies for URLs, and a fuzzed
#: name echoed back such as "http://[x" makes that scan raise (ValueError:
#: Invalid IPv6 URL) and end the run as "an internal error" (schemathesis
#: 4.32.5). agentpty sends no Location headers, so nothing is lost.
CONFIG = """
[phases.stateful.inference]
algorithms = ["dependency-analysis"]
"""


def write_config(folder: Path) -> Path:
    path = folder / "schemathesis.toml"
    path.write_text(CONFIG)
    return path


async def test_no_operation_answers_a_server_error(tmp_path: Path) -> None:
    """Every operation in /openapi.json, fuzzed with a valid token, answers below 500."""
    binary = Path(sys.executable).with_name("schemathesis")
    assert binary.exists(), "schemathesis is in the test extra: pip install -e '.[test]'"
    config = write_config(tmp_path)
    async with running(tmp_path) as server:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "--config-file",
            str(config),
            "run",
            f"{server.base}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error",
            # An endless event stream: every example would wait out the
            # request timeout. Its inputs are checked in test_events_api.py.
            "--exclude-path",
            "/api/events",
            "--max-examples",
            EXAMPLES,
            "--phases",
            PHASES,
            "--generation-database",
            "none",
            "--request-timeout",
            str(timeout(20)),
            "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout(180)):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        report = output.decode(errors="replace")
        assert process.returncode == 0, report[-4000:]
        assert "passed" in report, report[-2000:]
    assert not [line for line in server.log if "Traceback" in line], "".join(server.log)[-4000:]
