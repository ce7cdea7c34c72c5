"""Reaching a server from the command line: URL and token rules, HTTP calls, name lookup.

Where the server is: ``--url``, else ``AGENTPTY_URL``, else
``http://<AGENTPTY_HOST>:<AGENTPTY_PORT>`` (the address ``agentpty serve``
would bind, 127.0.0.1:8484 by default). The token: ``AGENTPTY_TOKEN``, else
the token file in the data dir (only for a server on this machine: that file
belongs to the local server), else a prompt when stdin is a terminal.

Every failure becomes one ``CliError`` whose message says what was wrong and
what to do; the command line prints it as one line and exits non-zero.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from agentpty import defaults

__all__ = ["Api", "CliError", "Target", "resolve_target"]

#: Seconds to wait for an answer; a milestone start waits for the agent to be ready.
HTTP_TIMEOUT = 120.0
_PAGE = 1000


class CliError(Exception):
    """A failure shown to the user as one line, ``agentpty: <message>``, exit status 1."""

    exit_code = 1


@dataclass(frozen=True)
class Target:
    """A server to talk to: its base URL (``http(s)://host:port``) and its token."""

    url: str
    token: str
    token_source: str

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(self.url)


def _default_url() -> str:
    host = os.environ.get("AGENTPTY_HOST") or defaults.HOST
    port = os.environ.get("AGENTPTY_PORT") or str(defaults.PORT)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token_file() -> Path:
    data_dir = os.environ.get("AGENTPTY_DATA_DIR") or str(defaults.DATA_DIR)
    return Path(data_dir).expanduser() / "token"


def resolve_target(url: str | None) -> Target:
    """The server and token to use, by the rules in this module's docstring."""
    base = (url or os.environ.get("AGENTPTY_URL") or _default_url()).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"--url {base!r} is not an http:// or https:// address")
    token = os.environ.get("AGENTPTY_TOKEN", "").strip()
    if token:
        return Target(base, token, "AGENTPTY_TOKEN")
    if _is_loopback(base):
        path = _token_file()
        try:
            token = path.read_text().strip()
        except OSError:
            token = ""
        if token:
            return Target(base, token, str(path))
    if sys.stdin.isatty():
        token = getpass.getpass(f"token for {base}: ").strip()
        if token:
            return Target(base, token, "the prompt")
    raise CliError(f"no token for {base}: set AGENTPTY_TOKEN to the token 'agentpty serve' printed")


def _detail(response: httpx.Response) -> str:
    """The server's own explanation of an error response, as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's 422: one entry per invalid field
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:]) or 'request'}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail or body)


class Api:
    """The REST API of one server, synchronously; every error is a ``CliError``."""

    def __init__(self, target: Target, *, timeout: float = HTTP_TIMEOUT) -> None:
        self.target = target
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=timeout,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the decoded JSON body (None for 204)."""
        url = self.target.url
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise CliError(
                f"no agentpty server at {url} ({exc}); start one with 'agentpty serve' "
                "or point --url / AGENTPTY_URL at it"
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the server at {url} did not answer in time ({method} {path})") from exc
        except httpx.HTTPError as exc:
            raise CliError(f"talking to {url} failed: {exc}") from exc
        if response.status_code == 401:
            raise CliError(
                f"the server at {url} refused the token from {self.target.token_source}; "
                "set AGENTPTY_TOKEN to the token 'agentpty serve' printed"
            )
        if response.is_error:
            raise CliError(f"{_detail(response)} (HTTP {response.status_code})")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _all(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", path, params={**params, "skip": len(items), "limit": _PAGE})
            items += page[key]
            if not page[key] or len(items) >= page["total"]:
                return items

    def projects(self) -> list[dict[str, Any]]:
        return self._all("/api/output-projects", "output_projects")

    def milestones(self, project_id: str | None = None) -> list[dict[str, Any]]:
        params = {"output_project_id": project_id} if project_id else {}
        return self._all("/api/milestones", "milestones", **params)

    def project(self, ref: str) -> dict[str, Any]:
        """The project whose id or name is ``ref``, or starts with it (only one may match)."""
        projects = self.projects()
        for exact in (
            [p for p in projects if p["id"] == ref],
            [p for p in projects if p["name"] == ref],
        ):
            if len(exact) == 1:
                return exact[0]
            if exact:
                _ambiguous("project", ref, exact)
        found = [p for p in projects if p["id"].startswith(ref) or p["name"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise CliError(
                f"no project matches {ref!r} by id or name; 'agentpty projects' lists them"
            )
        _ambiguous("project", ref, found)

    def milestone(self, ref: str) -> dict[str, Any]:
        """The milestone whose id is ``ref`` or starts with it (only one may match)."""
        found = [m for m in self.milestones() if m["id"].startswith(ref)]
        exact = [m for m in found if m["id"] == ref]
        if exact or len(found) == 1:
            return (exact or found)[0]
        if not found:
            raise CliError(
                f"no milestone id starts with {ref!r}; 'agentpty milestones PROJECT' lists them"
            )
        _ambiguous("milestone", ref, found)


def _ambiguous(kind: str, ref: str, found: list[dict[str, Any]]) -> NoReturn:
    names = ", ".join(
        f"{item['id'][:8]} ({item.get('name') or item.get('title')})" for item in found
    )
    raise CliError(f"{ref!r} matches {len(found)} {kind}s: {names}; give more of the id")
