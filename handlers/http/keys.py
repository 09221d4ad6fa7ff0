"""Typed application keys."""

from __future__ import annotations

from aiohttp import web

from app.bootstrap import Deps

DEPS = web.AppKey("deps", Deps)
DEBUG = web.AppKey("debug", bool)


def deps_of(request: web.Request) -> Deps:
    """The process Deps of a request."""
    return request.app[DEPS]
