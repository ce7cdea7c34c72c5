"""Output projects: create, list, inspect and delete; workspaces confined to a root."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentpty.agents.base import AgentProfile
from agentpty.domain.errors import AgentUnavailable, InvalidInput
from agentpty.domain.models import OutputProject, new_id
from agentpty.store.base import Store

__all__ = ["ProjectService", "confine", "slugify"]

MAX_NAME = 200


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40].rstrip("-") or "project"


def confine(root: Path, path: str | Path) -> Path:
    """Resolve ``path`` (relative to ``root`` if not absolute); it must stay inside ``root``."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(
            f"workspace_path {str(path)!r} resolves outside the workspaces root {str(root)!r}; "
            "choose a folder under it (or set AGENTPTY_WORKSPACES_ROOT)"
        )
    if resolved == root:
        raise InvalidInput(
            "workspace_path must be a folder under the workspaces root, not the root"
        )
    return resolved


class ProjectService:
    def __init__(
        self,
        store: Store,
        profiles: Mapping[str, AgentProfile],
        workspaces_root: Path,
        default_agent: str,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.root = workspaces_root
        self.default_agent = default_agent

    def profile(self, agent: str) -> AgentProfile:
        try:
            return self.profiles[agent]
        except KeyError:
            raise InvalidInput(
                f"unknown agent {agent!r}; use one of {', '.join(sorted(self.profiles))}"
            ) from None

    async def create(
        self, name: str, agent: str | None = None, workspace_path: str | None = None
    ) -> OutputProject:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"name must be 1..{MAX_NAME} characters")
        agent = agent or self.default_agent
        reason = self.profile(agent).unavailable_reason()
        if reason is not None:
            raise AgentUnavailable(reason)
        project_id = new_id()
        self.root.mkdir(parents=True, exist_ok=True)
        if workspace_path:
            workspace = confine(self.root.resolve(), workspace_path)
        else:
            workspace = self.root.resolve() / f"{slugify(name)}-{project_id[:8]}"
        try:
            (workspace / ".planning").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(
                f"cannot create workspace {str(workspace)!r}: {exc.strerror}"
            ) from exc
        project = OutputProject(
            id=project_id, name=name, workspace_path=str(workspace), agent=agent
        )
        return await self.store.create_project(project)

    async def get(self, project_id: str) -> OutputProject:
        return await self.store.get_project(project_id)

    async def describe(self, project: OutputProject) -> dict[str, Any]:
        """The project as the API shows it, with milestone counts per status."""
        counts = await self.store.count_milestones(project.id)
        return {
            **project.model_dump(mode="json"),
            "milestones": {str(status): n for status, n in counts.items()},
        }

    async def list(self, skip: int = 0, limit: int = 100) -> tuple[list[OutputProject], int]:
        return await self.store.list_projects(skip, limit)
