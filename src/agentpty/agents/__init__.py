"""Agent profiles: how each agent CLI is started, resumed and recognised."""

from agentpty.agents.base import AgentProfile, Launch

__all__ = ["AgentProfile", "Launch"]
