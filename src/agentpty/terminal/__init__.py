"""Terminals: PTY processes, sessions that fan output out, screen models.

This layer knows nothing of projects, HTTP or databases.
"""
