"""Request input that every route shares: clean text, bounded numbers, safe JSON out.

JSON can carry text no file, database or terminal takes: a lone UTF-16
surrogate (``"\\ud800"``) has no UTF-8 encoding, and NUL ends a C string
(paths, SQLite's C API). Every request body model derives from
``RequestBody``, which refuses both in any text field with a 422 naming the
field; terminal input may carry NUL, a real keystroke (Ctrl-Space, Ctrl-@).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationInfo, field_validator

__all__ = [
    "MAX_SKIP",
    "Limit",
    "RequestBody",
    "SafeJSONResponse",
    "Skip",
    "install_validation_handler",
    "text_problem",
]

#: Far more rows than any store holds, far below SQLite's 64-bit integers.
MAX_SKIP = 1_000_000_000
Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows to return")]


def text_problem(value: str, *, allow_nul: bool = False) -> str | None:
    """None if ``value`` can be stored and typed anywhere, else what is wrong with it."""
    if not allow_nul and "\x00" in value:
        return f"contains a NUL character at index {value.index(chr(0))}; remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone UTF-16 surrogate (U+{ord(value[exc.start]):04X}) at index "
            f"{exc.start}; send valid Unicode text"
        )
    return None


class RequestBody(BaseModel):
    """Base of every JSON request body; ``nul_allowed`` names fields that may hold NUL."""

    nul_allowed: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            problem = text_problem(value, allow_nul=info.field_name in cls.nul_allowed)
            if problem is not None:
                raise ValueError(problem)
        return value


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: any text, even a lone surrogate echoed in an error
    message, renders (plain ``JSONResponse`` would fail to encode it and answer 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def install_validation_handler(app: FastAPI) -> None:
    """422s list each problem's location and message, without echoing the input back
    (it may be a megabyte, or text that cannot be encoded)."""

    async def handle(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
            for error in exc.errors()
        ]
        return SafeJSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, handle)
