"""Settings, from flags and ``AGENTPTY_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentpty import defaults

__all__ = ["MIN_TOKEN_LENGTH", "Settings", "WeakToken", "load_or_create_token", "mask_url"]

#: Shorter tokens are refused at start: a guessable token is a remote shell.
MIN_TOKEN_LENGTH = 16


class WeakToken(ValueError):
    """The configured or stored token is too short; the message says how to fix it."""


class Settings(BaseSettings):
    """Everything configurable; each field is also ``AGENTPTY_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AGENTPTY_", extra="ignore")

    host: str = Field(defaults.HOST, description="address to bind; keep loopback unless proxied")
    port: int = Field(
        defaults.PORT, ge=0, le=65535, description="port to listen on; 0 picks a free one"
    )
    data_dir: Path = Field(
        defaults.DATA_DIR,
        description="where the token, the SQLite database, the agents' hook settings and the "
        "session host's sockets live",
    )
    database_url: str = Field(
        "", description="sqlite:///PATH or mongodb://...; default: agentpty.db in the data dir"
    )
    workspaces_root: Path | None = Field(
        None, description="every project workspace lies under it; default: <data dir>/workspaces"
    )
    token: SecretStr | None = Field(
        None,
        description="API token (prefer the env var: flags show in ps); default: generated "
        "once into <data dir>/token",
    )
    idle_timeout: float = Field(
        1800.0, gt=0, description="seconds with no client and no output before a graceful stop"
    )
    default_agent: str = Field(
        "", description="agent of new projects; default: claude if installed, else shell"
    )
    claude_bin: str = Field("claude", description="Claude Code binary: a name on PATH or a path")
    claude_args: str = Field(
        "",
        description="extra Claude Code arguments, shell-quoted "
        "(e.g. --dangerously-skip-permissions)",
    )
    codex_bin: str = Field("codex", description="Codex CLI binary: a name on PATH or a path")
    codex_args: str = Field(
        "",
        description="extra Codex CLI arguments, shell-quoted (e.g. '-c model=\"o4-mini\"'); "
        "--no-daemon is always passed",
    )
    gemini_bin: str = Field("gemini", description="Gemini CLI binary: a name on PATH or a path")
    gemini_args: str = Field(
        "", description="extra Gemini CLI arguments, shell-quoted (e.g. --model=gemini-2.5-pro)"
    )
    agent_env_drop: str = Field(
        "",
        description="variables agents must not inherit, comma or space separated "
        "(e.g. ANTHROPIC_API_KEY to force the subscription login)",
    )
    new_project_command: str = Field(
        "/gsd:new-project {context_path}",
        description="command of a project's first milestone ({context_path}, {milestone_id}, "
        "{title})",
    )
    new_milestone_command: str = Field(
        "/gsd:new-milestone {context_path}", description="command of every later milestone"
    )
    ready_timeout: float = Field(
        60.0, gt=0, description="longest wait, in seconds, for the agent to be ready for a command"
    )
    quiet_time: float = Field(
        0.5,
        gt=0,
        description="seconds of quiet output that mean ready, for agents without a prompt marker",
    )
    submit_pause: float = Field(
        0.2, ge=0, description="seconds between a pasted command and its Enter"
    )
    stop_grace: float = Field(3.0, gt=0, description="seconds between SIGTERM and SIGKILL")
    ws_compression: bool | None = Field(
        None,
        description="permessage-deflate on WebSockets: less bandwidth for remote clients, "
        "more server CPU; default: on unless the server listens on loopback only",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="event loop of the server and of the session host it starts: uvloop "
        "when installed (auto), or asyncio's own",
    )
    allowed_origins: str = Field(
        "", description="extra browser origins allowed on WebSockets (host[:port], comma separated)"
    )
    allowed_hosts: str = Field(
        "",
        description="extra names clients may reach the server by (Host header), comma "
        "separated, e.g. 'box.lan,agentpty.example.com'; loopback names and the bound "
        "address are always allowed (guards against DNS rebinding)",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="largest request body in bytes (milestone context included); larger "
        "bodies are refused with 413 without being read",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a client has to send a request's headers before the "
        "connection is closed with 408 (guards against slowloris)",
    )
    max_connections: int = Field(
        1000,
        ge=8,
        description="open HTTP and WebSocket connections at most; at the cap the oldest "
        "connection still sending its headers is closed to make room, else the new one is",
    )
    auth_failure_rate: float = Field(
        10.0,
        gt=0,
        description="failed authentications per second one client address may make "
        "(after a burst of twice as many); beyond it requests from that address get 429",
    )
    session_host: bool = Field(
        True,
        description="run agents in the session host daemon, so they outlive server restarts "
        "and are adopted by the next server; false: agents are children of the server",
    )
    stop_on_shutdown: bool = Field(
        False,
        description="stop every agent when the server shuts down (the old behaviour); by "
        "default the server detaches and agents keep running in the session host",
    )
    session_cgroups: bool = Field(
        True,
        description="put each hosted session in a cgroup v2 of its own where the machine "
        "allows it (stop kills it with cgroup.kill); false: find processes by walking the tree",
    )
    host_ring_size: int = Field(
        1024 * 1024,
        ge=4096,
        description="bytes of recent output the session host keeps per session, replayed "
        "to rebuild the screen when a server adopts the session",
    )
    confirm_timeout: float = Field(
        15.0,
        gt=0,
        description="seconds a typed command waits for the agent to confirm it got it "
        "(its prompt hook, or the echo for agents without hooks)",
    )
    state_quiet_time: float = Field(
        2.0,
        gt=0,
        description="seconds of quiet output that count as idle when the screen decides "
        "the agent state",
    )
    webhook_url: str = Field(
        "",
        description="every project's agent-state changes are POSTed here as signed JSON "
        "(X-Agentpty-Signature: sha256=HMAC of the body)",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of webhook signatures (prefer the env var); default: "
        "generated once into <data dir>/webhook-secret",
    )
    webhook_attempts: int = Field(5, ge=1, le=20, description="tries per webhook event")
    webhook_backoff: float = Field(
        0.5, gt=0, description="first webhook retry delay in seconds, doubled each time"
    )

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'agentpty.db'}"
        if self.workspaces_root is None:
            self.workspaces_root = self.data_dir / "workspaces"
        self.workspaces_root = self.workspaces_root.expanduser().resolve()
        return self

    @property
    def workspaces(self) -> Path:
        assert self.workspaces_root is not None
        return self.workspaces_root

    @property
    def compress_websockets(self) -> bool:
        """``ws_compression``, or when unset: on unless the bind address is loopback."""
        if self.ws_compression is not None:
            return self.ws_compression
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may be reached from elsewhere
            return True

    @property
    def run_dir(self) -> Path:
        """Where the session host's socket, locks and log live (mode 0700)."""
        return self.data_dir / "run"

    @property
    def claude_extra_args(self) -> list[str]:
        return shlex.split(self.claude_args)

    @property
    def codex_extra_args(self) -> list[str]:
        return shlex.split(self.codex_args)

    @property
    def gemini_extra_args(self) -> list[str]:
        return shlex.split(self.gemini_args)

    @property
    def env_drop(self) -> list[str]:
        return [name for name in self.agent_env_drop.replace(",", " ").split() if name]


def load_or_create_token(settings: Settings) -> str:
    """The configured token, else the one stored in the data dir (created once, mode 0600).

    Raises ``WeakToken`` for a token under ``MIN_TOKEN_LENGTH`` characters and
    ``OSError`` if the token file cannot be read or written.
    """
    if settings.token is not None and settings.token.get_secret_value():
        return _strong(settings.token.get_secret_value(), "AGENTPTY_TOKEN")
    path = settings.data_dir / "token"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        token = path.read_text().strip()
        if token:
            return _strong(token, f"the token in {path}")
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _strong(token: str, source: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise WeakToken(
            f"{source} has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
