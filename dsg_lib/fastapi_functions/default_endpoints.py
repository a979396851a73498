"""devsetgo-lib's ``create_default_router``: a ``/robots.txt`` built from a list of bots.

Examples:
    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI()
    >>> app.include_router(create_default_router([{"bot": "GPTBot", "allow": False}]))
    >>> print(TestClient(app).get("/robots.txt").text)
    User-agent: *
    User-agent: GPTBot
    Disallow: /
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Response

__all__ = ["create_default_router", "robots_txt"]


def robots_txt(config: Sequence[Mapping[str, Any]]) -> str:
    """The robots.txt text: one ``User-agent`` block per ``{"bot": name, "allow": bool}``.

    Examples:
        >>> robots_txt([{"bot": "ClaudeBot", "allow": True}]).splitlines()
        ['User-agent: *', 'User-agent: ClaudeBot', 'Allow: /']
    """
    lines = ["User-agent: *"]
    for entry in config:
        bot = entry.get("bot")
        if bot:
            lines += [f"User-agent: {bot}", "Allow: /" if entry.get("allow", True) else "Disallow: /"]
    return "\n".join(lines)


def create_default_router(config: Sequence[Mapping[str, Any]]) -> APIRouter:
    """A router serving ``GET /robots.txt`` (``text/plain``) for the given bots.

    Args:
        config: ``[{"bot": "GPTBot", "allow": False}, ...]``; bots without
            ``allow`` are allowed.

    Returns:
        The router, for ``app.include_router(...)``.
    """
    text = robots_txt(config)  # the config does not change: build the text once
    router = APIRouter()

    @router.get("/robots.txt", response_class=Response)
    async def get_robots_txt() -> Response:
        return Response(text, media_type="text/plain")

    return router
