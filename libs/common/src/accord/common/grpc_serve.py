"""Starting and stopping a service's gRPC server, as sync and presence both do.

``secured_server`` is the server with its interceptors (token checks when the
service has a tokens file, latency by method); once the servicers are added,
``start_serving`` adds the health service, binds (``BindError`` naming the
setting when it cannot), starts, marks it SERVING and registers the teardown on
the exit stack: NOT_SERVING, the caller's ``before_stop`` (ending its streams),
then ``server.stop(grace)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

import grpc
from accord.common.audit import AuditLog
from accord.common.config import format_addr
from accord.common.grpc_auth import authenticating
from accord.common.grpc_security import ServerSecurity
from accord.common.grpc_tokens import Scope
from accord.common.grpcutil import (
    LatencyInterceptor,
    add_health,
    add_port,
    create_server,
    set_serving,
)
from accord.common.lifecycle import BindError
from prometheus_client import Counter, Histogram


def secured_server(
    service: str,
    security: ServerSecurity,
    scopes: Mapping[str, Scope],
    refused: Counter,
    handling: Histogram,
    audit: AuditLog,
) -> grpc.aio.Server:
    guard = authenticating(service, security, scopes, refused, audit)
    return create_server([*guard, LatencyInterceptor(handling)])


async def start_serving(
    stack: AsyncExitStack,
    server: grpc.aio.Server,
    *,
    setting: str,
    addr: tuple[str, int],
    security: ServerSecurity,
    names: list[str],
    grace: float,
    before_stop: Callable[[], None],
) -> int:
    """Bind ``addr`` (the value of ``setting``), start, serve ``names``; the bound port."""
    health = add_health(server)
    host, requested = addr
    try:
        port = add_port(server, format_addr(host, requested), security)
    except RuntimeError as error:
        raise BindError(setting, format_addr(host, requested), str(error)) from error
    await server.start()

    async def stop() -> None:
        await set_serving(health, names, False)
        before_stop()
        await server.stop(grace)

    stack.push_async_callback(stop)
    await set_serving(health, names, True)
    return port
