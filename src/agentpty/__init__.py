"""agentpty: one long-lived, resumable coding-agent session per project."""

__version__ = "0.1.0"
