"""Typed application keys."""

from __future__ import annotations

from aiohttp import web

from app.bootstrap import Deps
from app.services.wallet import WalletRuntime

DEPS = web.AppKey("deps", Deps)
DEBUG = web.AppKey("debug", bool)


def deps_of(request: web.Request) -> Deps:
    """The process Deps of a request."""
    return request.app[DEPS]


def wallet_of(request: web.Request) -> WalletRuntime:
    """The process's secrets wallet (built once at start-up)."""
    wallet = request.app[DEPS].wallet
    if wallet is None:
        raise RuntimeError("the secrets wallet was not built at start-up")
    return wallet
