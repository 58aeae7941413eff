"""Caller authentication on a gRPC server: ``authorization: Bearer <service token>``,
and the scope each method needs.

Health checks (``grpc.health.v1``) stay open. A method missing from the map
needs ``admin``: a new RPC is closed until someone decides who may call it.
Refusals end the call with ``UNAUTHENTICATED`` (no token, or one not in
force) or ``PERMISSION_DENIED`` (a token without the scope), carry the
reason in ``accord-reason``, are counted by reason and method, and are logged
as a security event (``extra={"event": "auth_refused", ...}``) that names
the caller, never its token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from accord.common.audit import NULL, AuditLog
from accord.common.grpc_security import ServerSecurity
from accord.common.grpc_tokens import Scope, TokenRing
from accord.common.grpcutil import REASON_KEY
from prometheus_client import Counter

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
AUTHORIZATION = "authorization"

MISSING, INVALID, SCOPE = "missing_token", "invalid_token", "missing_scope"


def refused_counter(service: str) -> Counter:
    return Counter(
        f"accord_{service}_grpc_auth_refused_total",
        "gRPC calls refused for their credentials, by reason and method",
        ["reason", "method"],
    )


def bearer(metadata: Any) -> str | None:
    """The token of the call's ``authorization: Bearer`` header, if it has one."""
    for key, value in metadata or ():
        if key == AUTHORIZATION and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _refusing(
    handler: grpc.RpcMethodHandler,
    code: grpc.StatusCode,
    reason: str,
    log_refusal: Callable[[str], None],
) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind that ends the call with ``code``."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        log_refusal(context.peer())
        context.set_trailing_metadata(((REASON_KEY, reason),))
        await context.abort(code, f"refused: {reason.replace('_', ' ')}")

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(request, context)
        yield  # pragma: no cover - abort raises

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **serializers)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets a call through when its token is in ``ring`` with the scope its method needs."""

    def __init__(
        self,
        service: str,
        ring: TokenRing,
        scopes: Mapping[str, Scope],
        refused: Counter,
        audit: AuditLog = NULL,
    ) -> None:
        self._service = service
        self._ring = ring
        self._scopes = scopes
        self._refused = refused
        self._audit = audit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        needed = self._scopes.get(method, Scope.ADMIN)
        token = bearer(details.invocation_metadata)
        found = None if token is None else self._ring.find(token)
        if found is not None and needed in found.scopes:
            return handler
        if found is None:
            code, reason = grpc.StatusCode.UNAUTHENTICATED, MISSING if token is None else INVALID
        else:
            code, reason = grpc.StatusCode.PERMISSION_DENIED, SCOPE
        name = method.rsplit("/", 1)[-1]
        self._refused.labels(reason, name).inc()
        caller = None if found is None else found.name

        def log_refusal(peer: str) -> None:
            log.warning(
                "gRPC call refused: %s %s (caller %s, peer %s)",
                reason,
                method,
                caller or "-",
                peer,
                extra={
                    "event": "auth_refused",
                    "service": self._service,
                    "method": method,
                    "reason": reason,
                    "caller": caller,
                    "scope": str(needed),
                    "peer": peer,
                },
            )
            self._audit.emit(
                "caller.refused",
                actor=caller,
                ip=peer,
                method=method,
                reason=reason,
                scope=str(needed),
            )

        return _refusing(handler, code, reason, log_refusal)


def authenticating(
    service: str,
    security: ServerSecurity,
    scopes: Mapping[str, Scope],
    refused: Counter,
    audit: AuditLog = NULL,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors that check callers' tokens (none when unauthenticated calls are allowed);
    each refusal is counted, logged and written to ``audit`` (``caller.refused``)."""
    if security.tokens_file is None:
        return []
    ring = TokenRing(security.tokens_file, security.tokens, security.tokens_reload_interval)
    return [AuthInterceptor(service, ring, scopes, refused, audit)]
