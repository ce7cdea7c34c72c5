"""Options every client command shares, and command groups with a default subcommand."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["Command", "DefaultList", "JsonOpt", "UrlOpt"]

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="server address [env AGENTPTY_URL; default http://127.0.0.1:8484]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts, not a table")]


def _plain_argument(argument: TyperArgument) -> None:
    """Help shows ``PROJECT`` as the metavar says, without ``<str>`` or ``{PROJECT}`` around it."""
    name = argument.metavar or (argument.name or "").upper()
    shown = name if argument.required else f"[{name}]"
    argument.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
    argument.get_usage_pieces = lambda ctx: [shown]  # type: ignore[method-assign]


class Command(TyperCommand):
    """A command whose help names arguments plainly (see ``_plain_argument``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                _plain_argument(param)


class DefaultList(TyperGroup):
    """A group whose ``list`` subcommand runs when no other is named.

    ``agentpty milestones PROJECT`` is ``agentpty milestones list PROJECT``,
    and ``agentpty projects --json`` is ``agentpty projects list --json``.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        help_names = set(ctx.help_option_names)
        if not args or (args[0] not in self.commands and args[0] not in help_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)
