"""``accord webhooks list|resume ENDPOINT``: the webhook endpoints and their backlog.

Both call a sync replica's ``Webhooks`` gRPC service (any replica: the backlog is
in the database they share) at ``--addr``, by default ``SYNC_ADDR`` as sync reads
it (a wildcard bind address is reached on loopback).
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import WebhooksStub
from accord.common import config
from accord.common.config import environ, format_addr
from accord.common.grpc_security import ClientSecurity
from accord.common.grpcutil import create_channel
from accord.common.lifecycle import load_settings
from accord.sync.settings import Settings

ACTIONS = ("list", "resume")
DEADLINE = 10.0


def default_addr() -> str:
    host, port = load_settings(lambda: Settings.from_env(config.environ())).sync_addr
    return format_addr("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port)


def _ago(ms: int) -> str:
    return f"{max(time.time() - ms / 1000, 0):.0f}s ago" if ms else "-"


def describe(endpoint: pb.WebhookEndpoint) -> str:
    state = "parked" if endpoint.parked else "active" if endpoint.configured else "unconfigured"
    lines = [f"{endpoint.id}: {state}"]
    if endpoint.configured:
        lines.append(f"  url {endpoint.url}, rooms {' '.join(endpoint.rooms)}")
    lines.append(
        f"  backlog {endpoint.backlog_changes} changes in {endpoint.backlog_rooms} rooms "
        f"({endpoint.backlog_rows} batches), oldest {_ago(endpoint.oldest_at)}, "
        f"attempts {endpoint.attempts}"
    )
    if endpoint.parked:
        lines.append(f"  parked {_ago(endpoint.parked_at)}: {endpoint.parked_reason}")
    elif endpoint.last_error:
        lines.append(f"  last error: {endpoint.last_error}")
    return "\n".join(lines)


async def _call(addr: str, action: str, endpoint: str | None) -> str:
    # The caller's own credentials, as the edge would send them (SERVICE_TOKEN with the
    # admin scope, GRPC_TLS_* files); none: plaintext without a token.
    security = ClientSecurity.from_env(environ())
    async with create_channel(addr, security) as channel:
        stub = WebhooksStub(channel)  # type: ignore[no-untyped-call]
        if action == "list":
            answer = await stub.ListWebhooks(pb.ListWebhooksRequest(), timeout=DEADLINE)
            return "\n".join(describe(e) for e in answer.endpoints) or "no webhook endpoints"
        resumed = await stub.ResumeWebhook(pb.ResumeWebhookRequest(id=endpoint), timeout=DEADLINE)
        verb = "resumed" if resumed.was_parked else "was not parked; its batches are due now"
        return f"{endpoint} {verb}\n{describe(resumed.endpoint)}"


def run(action: str, endpoint: str | None, addr: str | None) -> int:
    """Run ``accord webhooks <action> [endpoint]``; returns the exit status."""
    if action == "resume" and not endpoint:
        print("accord webhooks resume: name the ENDPOINT (its id)", file=sys.stderr)
        return 2
    target = addr or default_addr()
    try:
        print(asyncio.run(_call(target, action, endpoint)))
    except grpc.aio.AioRpcError as error:
        print(f"accord webhooks: {target}: {error.details()}", file=sys.stderr)
        return 1
    return 0
