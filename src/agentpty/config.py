"""Settings, from flags and ``AGENTPTY_*`` environment variables."""

from __future__ import annotations

import os
import secrets
import shlex
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_or_create_token", "mask_url"]


class Settings(BaseSettings):
    """Everything configurable; each field is also ``AGENTPTY_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AGENTPTY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8484, ge=0, le=65535)
    data_dir: Path = Path("~/.local/share/agentpty")
    database_url: str = ""
    workspaces_root: Path | None = None
    token: SecretStr | None = None
    idle_timeout: float = Field(1800.0, gt=0, description="seconds with no client and no output")
    default_agent: str = ""
    #: Claude Code binary and extra arguments (e.g. --dangerously-skip-permissions).
    claude_bin: str = "claude"
    claude_args: str = ""
    #: Extra variables the agent must not inherit, comma or space separated
    #: (e.g. ANTHROPIC_API_KEY to force subscription login).
    agent_env_drop: str = ""
    new_project_command: str = "/gsd:new-project {context_path}"
    new_milestone_command: str = "/gsd:new-milestone {context_path}"
    #: Command delivery: longest wait for the agent to be ready, quiet time
    #: that counts as ready for agents without a marker, pause before Enter.
    ready_timeout: float = Field(60.0, gt=0)
    quiet_time: float = Field(0.5, gt=0)
    submit_pause: float = Field(0.2, ge=0)
    stop_grace: float = Field(3.0, gt=0)
    #: permessage-deflate on WebSockets: saves bandwidth for remote browsers,
    #: costs server CPU (about a quarter of it under heavy output).
    ws_compression: bool = True
    #: Extra allowed WebSocket origins (host[:port]), comma separated.
    allowed_origins: str = ""
    #: Agent state: how long a command waits for the agent to confirm it got
    #: it (its prompt hook), and how long quiet output counts as idle on screen.
    confirm_timeout: float = Field(15.0, gt=0)
    state_quiet_time: float = Field(2.0, gt=0)
    #: Webhooks: every project's state changes are POSTed here (JSON, signed
    #: with HMAC-SHA256 of the body under ``webhook_secret`` in the
    #: ``X-Agentpty-Signature: sha256=<hex>`` header). Without a secret one is
    #: generated into ``<data_dir>/webhook-secret``.
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    webhook_attempts: int = Field(5, ge=1, le=20)
    webhook_backoff: float = Field(0.5, gt=0, description="first retry delay, doubled each time")

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
    def claude_extra_args(self) -> list[str]:
        return shlex.split(self.claude_args)

    @property
    def env_drop(self) -> list[str]:
        return [name for name in self.agent_env_drop.replace(",", " ").split() if name]


def load_or_create_token(settings: Settings) -> str:
    """The configured token, else the one stored in the data dir (created once, mode 0600)."""
    if settings.token is not None and settings.token.get_secret_value():
        return settings.token.get_secret_value()
    path = settings.data_dir / "token"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
