"""The session host: a daemon that owns agents' PTYs and process trees across server restarts.

Kept free of heavy imports: ``python -m agentpty.host`` must stay small.
"""

__all__: list[str] = []
