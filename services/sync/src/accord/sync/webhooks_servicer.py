"""The gRPC face of the webhooks admin API: list endpoints and their backlog, resume one."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1 import sync_pb2_grpc
from accord.common.grpcutil import abort
from accord.sync.errors import Unavailable
from accord.sync.outbox import Backlog, Outbox
from accord.sync.webhooks import Endpoint, WebhookRouter


def endpoint_message(endpoint: Endpoint | None, backlog: Backlog) -> pb.WebhookEndpoint:
    message = pb.WebhookEndpoint(
        id=backlog.endpoint,
        configured=endpoint is not None,
        parked=backlog.parked_at > 0,
        parked_at=backlog.parked_at,
        parked_reason=backlog.reason,
        backlog_rows=backlog.rows,
        backlog_changes=backlog.changes,
        backlog_rooms=backlog.rooms,
        oldest_at=backlog.oldest,
        attempts=backlog.attempts,
        last_error=backlog.last_error,
    )
    if endpoint is not None:
        message.url = endpoint.shown_url
        message.rooms.extend(endpoint.rooms)
        message.events.extend(sorted(endpoint.events))
    return message


class WebhooksServicer(sync_pb2_grpc.WebhooksServicer):
    def __init__(
        self, outbox: Outbox, router: WebhookRouter, on_resume: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._router = router
        self._on_resume = on_resume

    async def _endpoints(self) -> list[pb.WebhookEndpoint]:
        config = self._router.config
        found = {b.endpoint: b for b in await self._outbox.backlog()}
        names = [e.id for e in config.endpoints] + sorted(
            set(found) - {e.id for e in config.endpoints}
        )
        return [endpoint_message(config.endpoint(n), found.get(n, Backlog(n))) for n in names]

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        try:
            return pb.ListWebhooksResponse(endpoints=await self._endpoints())
        except Unavailable as error:
            await abort(context, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", str(error))
            raise

    async def ResumeWebhook(
        self, request: pb.ResumeWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeWebhookResponse:
        try:
            listed = {e.id: e for e in await self._endpoints()}
            if request.id not in listed:
                await abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    "NOT_FOUND",
                    f"no webhook endpoint {request.id!r} (configured, parked or with a backlog)",
                )
            was_parked = await self._outbox.resume(request.id)
            self._on_resume()
            shown = {e.id: e for e in await self._endpoints()}.get(request.id, listed[request.id])
            return pb.ResumeWebhookResponse(was_parked=was_parked, endpoint=shown)
        except Unavailable as error:
            await abort(context, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", str(error))
            raise
