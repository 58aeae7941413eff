"""gRPC plumbing shared by the services and their clients.

Servers get a bounded connection age (so scaled-out replicas receive new
connections), keepalive, message size limits and the standard health service.
Clients get keepalive and the same message size limits; every call they make
carries a deadline. Both take their protection (TLS, service tokens) from a
``grpc_security`` settings object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from accord.common.grpc_channel import open_channel
from accord.common.grpc_security import ClientSecurity, ServerSecurity
from accord.common.grpc_tls import server_credentials
from accord.common.metrics import CALL_SECONDS
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Histogram

log = logging.getLogger(__name__)

MAX_GRPC_MESSAGE = 16 * 1024 * 1024

SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 30 * 1000),
    ("grpc.keepalive_time_ms", 20 * 1000),
    ("grpc.keepalive_timeout_ms", 10 * 1000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
    ("grpc.so_reuseport", 0),
]

CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 20 * 1000),
    ("grpc.keepalive_timeout_ms", 10 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

# Reasons travel in trailing metadata so that callers can map them to the
# client protocol's error codes without parsing messages.
REASON_KEY = "accord-reason"


def server_latency_histogram(service: str) -> Histogram:
    return Histogram(
        f"accord_{service}_grpc_handling_seconds",
        "Time to handle a gRPC call, by method",
        ["method"],
        buckets=CALL_SECONDS,
    )


class LatencyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Observes the handling time of unary calls by method."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        observe = self._histogram.labels(method).observe
        inner = handler.unary_unary

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def create_server(interceptors: list[grpc.aio.ServerInterceptor] | None = None) -> grpc.aio.Server:
    return grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors or [])


def add_port(server: grpc.aio.Server, address: str, security: ServerSecurity) -> int:
    """Listen on ``address`` with TLS when ``security`` has its files; the bound port.

    Raises ``RuntimeError`` when the address cannot be bound (0 from some grpcio versions)."""
    security.check()
    if security.tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(security.tls))
    if port == 0:
        raise RuntimeError("the port is taken")
    return int(port)


def add_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    """The standard health service; ``set_serving`` sets its statuses."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, names: list[str], serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ["", *names]:
        await servicer.set(name, status)


PLAINTEXT = ClientSecurity.unprotected()


def create_channel(target: str, security: ClientSecurity = PLAINTEXT) -> grpc.aio.Channel:
    """A channel to ``target``; plaintext without a token unless ``security`` says otherwise
    (the services always pass their settings' ``grpc``; tests and tools dialling a
    loopback server may rely on the default)."""
    return open_channel(target, security, CLIENT_OPTIONS)


async def check_health(channel: grpc.aio.Channel, service: str = "", timeout: float = 1.0) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, message: str
) -> None:
    """End the call with ``code``, a human message and a machine-readable reason."""
    context.set_trailing_metadata(((REASON_KEY, reason),))
    await context.abort(code, message)


def reason_of(error: grpc.aio.AioRpcError) -> str | None:
    for key, value in error.trailing_metadata() or ():
        if key == REASON_KEY:
            return str(value)
    return None
