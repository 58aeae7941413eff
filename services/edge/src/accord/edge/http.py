"""The edge's plain HTTP routes: ``/health``, ``/ready``, ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from accord.common import grpcutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Readiness:
    """``/ready``: 200 while the edge reaches sync and presence, has its identity provider's
    keys (when ``JWKS_URL`` is set) and is not draining."""

    def __init__(
        self,
        draining: Callable[[], bool],
        sync: grpc.aio.Channel,
        presence: grpc.aio.Channel,
        keys: Callable[[], bool] = lambda: True,
    ) -> None:
        self._draining = draining
        self._sync = sync
        self._presence = presence
        self._keys = keys

    async def handle(self, request: web.Request) -> web.Response:
        if self._draining():
            return web.json_response({"ready": False, "reason": "draining"}, status=503)
        sync_ok, presence_ok = await asyncio.gather(
            grpcutil.check_health(self._sync), grpcutil.check_health(self._presence)
        )
        keys_ok = self._keys()
        ready = sync_ok and presence_ok and keys_ok
        body = {"ready": ready, "sync": sync_ok, "presence": presence_ok, "jwks": keys_ok}
        return web.json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application, readiness: Readiness) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", readiness.handle)
    app.router.add_get("/metrics", metrics)
