"""The webhook routes of the admin API: ``GET /admin/webhooks`` and
``POST /admin/webhooks/{id}/resume``, proxying sync's ``Webhooks`` service.

Any edge answers for all (the state is in sync's database).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.api.sync.v1.sync_pb2_grpc import WebhooksStub
from accord.edge.admin_http import authorized
from accord.edge.settings import Settings
from aiohttp import web

log = logging.getLogger("accord.edge.admin")


def webhook_json(endpoint: spb.WebhookEndpoint) -> dict[str, Any]:
    """One endpoint as ``ListWebhooks`` gives it, with the proto's field names."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "rooms": list(endpoint.rooms),
        "events": list(endpoint.events),
        "configured": endpoint.configured,
        "parked": endpoint.parked,
        "parked_at": endpoint.parked_at,
        "parked_reason": endpoint.parked_reason,
        "backlog_rows": endpoint.backlog_rows,
        "backlog_changes": endpoint.backlog_changes,
        "backlog_rooms": endpoint.backlog_rooms,
        "oldest_at": endpoint.oldest_at,
        "attempts": endpoint.attempts,
        "last_error": endpoint.last_error,
    }


_RPC_STATUS = {grpc.StatusCode.NOT_FOUND: (404, "NOT_FOUND")}


def _rpc_failed(error: grpc.aio.AioRpcError) -> web.Response:
    status, code = _RPC_STATUS.get(error.code(), (503, "UNAVAILABLE"))
    return web.json_response({"error": code, "message": error.details() or code}, status=status)


class WebhooksAdmin:
    """``GET /admin/webhooks`` and ``POST /admin/webhooks/{id}/resume``, over sync's
    ``Webhooks`` service on the edge's sync channel."""

    def __init__(self, settings: Settings, sync_channel: grpc.aio.Channel) -> None:
        self.settings = settings
        self._stub = WebhooksStub(sync_channel)  # type: ignore[no-untyped-call]

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/webhooks", self.list_webhooks)
        app.router.add_post("/admin/webhooks/{id}/resume", self.resume)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        caller = authorized(self.settings, request, loopback_ok=False)
        if isinstance(caller, web.Response):
            return caller
        try:
            answer: spb.ListWebhooksResponse = await self._stub.ListWebhooks(
                spb.ListWebhooksRequest(), timeout=self.settings.rpc_timeout
            )
        except grpc.aio.AioRpcError as error:
            return _rpc_failed(error)
        return web.json_response({"endpoints": [webhook_json(e) for e in answer.endpoints]})

    async def resume(self, request: web.Request) -> web.Response:
        caller = authorized(self.settings, request, loopback_ok=False)
        if isinstance(caller, web.Response):
            return caller
        endpoint = request.match_info["id"]
        try:
            answer: spb.ResumeWebhookResponse = await self._stub.ResumeWebhook(
                spb.ResumeWebhookRequest(id=endpoint), timeout=self.settings.rpc_timeout
            )
        except grpc.aio.AioRpcError as error:
            return _rpc_failed(error)
        log.info("admin resumed webhook endpoint %s (parked: %s)", endpoint, answer.was_parked)
        return web.json_response(
            {"was_parked": answer.was_parked, "endpoint": webhook_json(answer.endpoint)}
        )
