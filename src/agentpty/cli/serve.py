"""``agentpty serve``: one flag per setting, generated from ``Settings``.

The flags cannot drift from the settings: each field of
``agentpty.config.Settings`` becomes ``--<field-name>`` with the field's
description as its help, its type as a plain metavar and its environment
variable named. Only flags given on the command line override; everything
else comes from ``AGENTPTY_*`` variables and the defaults, as pydantic reads them.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from agentpty.config import Settings

__all__ = ["LOG_LEVELS", "LogLevel", "flag_name", "serve"]


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LOG_LEVELS = tuple(str(level) for level in LogLevel)


def flag_name(field: str) -> str:
    """The command-line flag of a settings field: ``idle_timeout`` → ``--idle-timeout``."""
    return "--" + field.replace("_", "-")


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _flag_type(annotation: Any) -> tuple[Any, str]:
    """The Python type typer parses a field as, and its metavar; text for the rest.

    Whatever typer passes on as text, pydantic validates as the field's type.
    """
    kind = _unwrap(annotation)
    if typing.get_origin(kind) is typing.Literal:
        choices = [str(c) for c in typing.get_args(kind)]
        return str, "[" + "|".join(choices) + "]"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind, "[" + "|".join(str(m.value) for m in kind) + "]"
    if kind in (bool, int, float, Path):
        return kind, {bool: "", int: "INT", float: "NUMBER", Path: "PATH"}[kind]
    return str, "TEXT"


def _help(name: str, field: FieldInfo) -> str:
    text = (field.description or "").rstrip(".")
    default = field.default
    if isinstance(default, enum.Enum):
        default = default.value
    extra = f"env AGENTPTY_{name.upper()}"
    if isinstance(default, bool):
        extra += f"; default {'on' if default else 'off'}"
    elif isinstance(default, str | int | float | Path) and default != "":
        extra += f"; default {default}"
    return f"{text} [{extra}]"


def _parameter(name: str, field: FieldInfo) -> tuple[inspect.Parameter, Any]:
    kind, metavar = _flag_type(field.annotation)
    flag = flag_name(name)
    declaration = f"{flag}/--no-{flag[2:]}" if kind is bool else flag
    option = typer.Option(
        declaration,
        metavar=metavar or None,
        help=_help(name, field),
        show_default=False,
    )
    annotation = Annotated[kind | None, option]  # type: ignore[valid-type]
    parameter = inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )
    return parameter, annotation


def _serve(log_level: LogLevel = LogLevel.INFO, **values: Any) -> None:
    """Serve the API, the web UI and the terminals until SIGINT or SIGTERM.

    Every setting is a flag here and an AGENTPTY_* variable; flags win. On the
    way out the server detaches: agents keep running in the session host, and
    the next server adopts them (--stop-on-shutdown stops them instead;
    'agentpty stop --all' stops them with no server running).
    """
    from agentpty.server import loop_factory, run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Flags left out are None: the environment and the defaults decide those.
    overrides = {name: value for name, value in values.items() if value is not None}
    with asyncio.Runner(loop_factory=loop_factory(overrides)) as runner:
        code = runner.run(run(overrides, str(log_level)))
    raise typer.Exit(code)


def serve() -> Callable[..., None]:
    """The ``serve`` command function, its signature generated from ``Settings``.

    typer builds a command from a function's signature and annotations; here
    both are made from the settings' fields, one keyword parameter each.
    """
    log_level = Annotated[
        LogLevel,
        typer.Option(
            metavar="[" + "|".join(LOG_LEVELS) + "]",
            help="how much the server logs [default info]",
            show_default=False,
        ),
    ]
    parameters = [
        inspect.Parameter(
            "log_level", inspect.Parameter.KEYWORD_ONLY, default=LogLevel.INFO, annotation=log_level
        )
    ]
    annotations: dict[str, Any] = {"log_level": log_level, "return": None}
    for name, field in Settings.model_fields.items():
        parameter, annotations[name] = _parameter(name, field)
        parameters.append(parameter)
    # Flags in the settings' order, the log level last.
    parameters.append(parameters.pop(0))

    def command(**values: Any) -> None:
        _serve(**values)

    command.__doc__ = _serve.__doc__
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    return command
