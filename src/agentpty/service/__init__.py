"""Use cases: projects, sessions, milestones and headless runs."""
