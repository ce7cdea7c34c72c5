#!/usr/bin/env python3
"""A stand-in for the Claude Code CLI, fast and deterministic, for unit tests.

It mimics the surface agentpty relies on (see docs/claude-code-findings.md):
``--session-id=<id>`` / ``--resume=<id>`` with the same error messages and
exit codes, a transcript ``$CLAUDE_CONFIG_DIR/projects/<cwd>/<id>.jsonl``
written on the first message, the ``❯`` prompt glyph (after
``FAKE_AGENT_STARTUP`` seconds), bracketed paste, ``esc to interrupt`` while
"thinking", custom commands from ``$CLAUDE_CONFIG_DIR/commands/<ns>/<name>.md``
(``Unknown command: /x`` otherwise), ``/clear`` (new id, SessionStart hook
with source "clear"), ``/exit``, a positional initial prompt, SessionStart
and UserPromptSubmit hooks from ``--settings=<file>``, and
``-p --output-format=stream-json``. Each submitted message is appended to
``$FAKE_AGENT_LOG`` as JSON (session id, text, turn, cwd).

With ``FAKE_AGENT_OWN_ID=1`` it stands in for an agent that chooses its own
conversation ids, as Codex does: ``--session-id`` is refused, a start
without ``--resume`` picks a fresh id that the terminal never shows; it is
told only through the hooks (if ``--settings`` is given) or by the
conversation file ``$CLAUDE_CONFIG_DIR/own/<id>.jsonl``, whose first line
(``{"type": "meta", "id", "cwd"}``) is written with the first message (and
in a headless run's ``init`` event). ``--resume`` of a missing conversation
prints ``Error: no saved conversation``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import termios
import time
import tty
import urllib.request
import uuid
from pathlib import Path

CONFIG = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
CWD = os.getcwd()


OWN_ID = os.environ.get("FAKE_AGENT_OWN_ID") == "1"


def transcript(session_id: str) -> Path:
    if OWN_ID:
        return CONFIG / "own" / f"{session_id}.jsonl"
    return CONFIG / "projects" / re.sub(r"[^A-Za-z0-9]", "-", CWD) / f"{session_id}.jsonl"


def user_turns(session_id: str) -> int:
    path = transcript(session_id)
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"type": "user"' in line)


def run_hooks(settings: str | None, event: str, payload: dict[str, object]) -> None:
    """Run or post the hooks of ``event`` as Claude Code does (command and http types)."""
    if not settings:
        return
    config = json.loads(Path(settings).read_text())
    for group in config.get("hooks", {}).get(event, []):
        for hook in group.get("hooks", []):
            data = json.dumps({**payload, "hook_event_name": event, "cwd": CWD}).encode()
            if hook.get("type") == "http":
                post_hook(hook, data)
            else:
                subprocess.run(hook["command"], shell=True, input=data, check=False)


def post_hook(hook: dict[str, object], data: bytes) -> None:
    """POST ``data``; header values' ``${NAME}`` filled from the environment for allowed names."""
    allowed = set(hook.get("allowedEnvVars") or [])  # type: ignore[call-overload]
    headers = {"Content-Type": "application/json"}
    for name, value in dict(hook.get("headers") or {}).items():  # type: ignore[call-overload]
        headers[name] = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: os.environ.get(m[1] or m[2], "") if (m[1] or m[2]) in allowed else "",
            value,
        )
    request = urllib.request.Request(str(hook["url"]), data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except OSError as exc:
        print(f"hook failed: {exc}", file=sys.stderr)


def expand(text: str) -> str | None:
    """Custom command expansion; None for an unknown command."""
    if not text.startswith("/"):
        return text
    name, _, args = text[1:].partition(" ")
    namespace, _, command = name.partition(":")
    path = CONFIG / "commands" / namespace / f"{command}.md" if command else None
    if path is None or not path.exists():
        return None
    return path.read_text().replace("$ARGUMENTS", args).strip()


class Agent:
    def __init__(self, session_id: str, settings: str | None) -> None:
        self.session_id = session_id
        self.settings = settings

    def submit(self, text: str, out: list[str]) -> None:
        expanded = expand(text)
        if expanded is None:
            out.append(f"● Unknown command: {text.split()[0]}\r\n")
            return
        run_hooks(
            self.settings, "UserPromptSubmit", {"session_id": self.session_id, "prompt": text}
        )
        path = transcript(self.session_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if OWN_ID and not path.exists():
            meta = {"type": "meta", "id": self.session_id, "cwd": CWD}
            path.write_text(json.dumps(meta) + "\n")
        with path.open("a") as handle:
            handle.write(
                json.dumps({"type": "user", "sessionId": self.session_id, "text": expanded}) + "\n"
            )
        turn = user_turns(self.session_id)
        with path.open("a") as handle:
            handle.write(json.dumps({"type": "assistant", "text": f"turn={turn}"}) + "\n")
        log = os.environ.get("FAKE_AGENT_LOG")
        if log:
            with open(log, "a") as handle:
                record = {"session_id": self.session_id, "text": expanded, "turn": turn, "cwd": CWD}
                handle.write(json.dumps(record) + "\n")
        out.append(f"● turn={turn}\r\n")


def headless(agent: Agent, prompt: str) -> int:
    print(
        json.dumps(
            {"type": "system", "subtype": "init", "session_id": agent.session_id, "cwd": CWD}
        )
    )
    out: list[str] = []
    agent.submit(prompt, out)
    text = "".join(out).strip().lstrip("● ")
    print(
        json.dumps(
            {
                "type": "assistant",
                "message": {"content": [{"type": "text", "text": text}]},
                "session_id": agent.session_id,
            }
        )
    )
    print(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "result": text,
                "session_id": agent.session_id,
                "total_cost_usd": 0.0001,
                "duration_ms": 5,
            }
        )
    )
    return 0


def interactive(agent: Agent, initial: str | None) -> int:
    time.sleep(float(os.environ.get("FAKE_AGENT_STARTUP", "0.3")))
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    write = sys.stdout.write
    try:
        write("fake agent ready\r\n❯ ")
        sys.stdout.flush()
        if initial:
            out: list[str] = []
            agent.submit(initial, out)
            write("".join(out) + "❯ ")
            sys.stdout.flush()
        buffer, pasting = "", False
        while True:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                return 0
            while chunk:
                if chunk.startswith("\x1b[200~"):
                    pasting, chunk = True, chunk[6:]
                    continue
                if chunk.startswith("\x1b[201~"):
                    pasting, chunk = False, chunk[6:]
                    continue
                char, chunk = chunk[0], chunk[1:]
                if char == "\x04" and not buffer:
                    return 0
                if char == "\r" and not pasting:
                    text, buffer = buffer.strip(), ""
                    write("\r\n")
                    if text == "/exit":
                        return 0
                    out = []
                    if text == "/clear":
                        agent.session_id = str(uuid.uuid4())
                        run_hooks(
                            agent.settings,
                            "SessionStart",
                            {"session_id": agent.session_id, "source": "clear"},
                        )
                    elif text:
                        # Recorded before "busy" shows, so a delivered command is logged.
                        agent.submit(text, out)
                        if not out[-1].startswith("● Unknown"):
                            # Busy while "thinking", then the line is erased, as the CLI does.
                            out.insert(0, "✻ thinking… (esc to interrupt)\r\x1b[2K")
                    write("".join(out) + "❯ ")
                else:
                    buffer += char
                    write(char)
                sys.stdout.flush()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if not OWN_ID:
            write(f"\r\nResume this session with:\r\nclaude --resume {agent.session_id}\r\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    positional: list[str] = []
    rest = False
    for arg in argv:
        if rest or not arg.startswith("-"):
            positional.append(arg)
        elif arg == "--":
            rest = True
        else:
            key, _, value = arg.partition("=")
            options[key] = value
    if OWN_ID and "--session-id" in options:
        print("Error: this agent chooses its own conversation ids")
        return 2
    session_id = options.get("--resume") or options.get("--session-id") or str(uuid.uuid4())
    if OWN_ID and "--resume" in options and not transcript(session_id).exists():
        print(f"Error: no saved conversation {session_id}")
        return 1
    if "--resume" in options and not transcript(session_id).exists():
        print(f"No conversation found with session ID: {session_id}")
        return 1
    if "--session-id" in options and transcript(session_id).exists():
        print(f"Error: Session ID {session_id} is already in use.")
        return 1
    agent = Agent(session_id, options.get("--settings"))
    source = "resume" if "--resume" in options else "startup"
    run_hooks(agent.settings, "SessionStart", {"session_id": session_id, "source": source})
    prompt = positional[0] if positional else None
    if "-p" in options:
        return headless(agent, prompt or "")
    return interactive(agent, prompt)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
