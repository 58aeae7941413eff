"""Client channels to sync and presence: TLS and the caller's service token.

With TLS the token rides as call credentials (``grpc.access_token_call_credentials``,
added by gRPC's core); over plaintext, which gRPC refuses call credentials on,
a client interceptor adds the same ``authorization: Bearer`` header. A TLS
channel is a ``ReloadingChannel``: when its files change (cert-manager renewed
the client certificate or the CA) the next call goes out on a new channel with
the new credentials, and the old one is closed after letting its calls finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from accord.common.grpc_files import WatchedFiles
from accord.common.grpc_security import ClientSecurity
from accord.common.grpc_tls import TlsFiles, channel_credentials

log = logging.getLogger(__name__)

Options = Sequence[tuple[str, Any]]

RETIRE_GRACE = 60.0
"""Seconds a replaced channel's calls (Subscribe and Watch streams) have to end."""


class TokenInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)


def _tls_channel(target: str, security: ClientSecurity, tls: TlsFiles, options: Options) -> Any:
    credentials = channel_credentials(tls)
    if security.token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(security.token)
        )
    options = [*options, *security.channel_options()]
    return grpc.aio.secure_channel(target, credentials, options=options)


def open_channel(target: str, security: ClientSecurity, options: Options) -> grpc.aio.Channel:
    tls = security.tls
    if tls is None:
        interceptors = [] if security.token is None else [TokenInterceptor(security.token)]
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return ReloadingChannel(lambda: _tls_channel(target, security, tls, options), tls.paths)


class _Callable:
    """A multi-callable that asks its channel for the current inner channel at each call."""

    def __init__(
        self, channel: ReloadingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._channel = channel
        self._kind = kind
        self._args = args
        self._kwargs = kwargs
        self._bound: tuple[Any, Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.current()
        if self._bound is None or self._bound[0] is not inner:
            self._bound = (inner, getattr(inner, self._kind)(*self._args, **self._kwargs))
        return self._bound[1](*args, **kwargs)


class ReloadingChannel(grpc.aio.Channel):  # type: ignore[misc]
    """A channel whose credentials follow their files: re-made when they change."""

    def __init__(
        self, make: Callable[[], grpc.aio.Channel], paths: tuple[str, ...], interval: float = 1.0
    ) -> None:
        self._make = make
        self._watch = WatchedFiles(paths, interval)
        self._channel = make()
        self._retired: dict[asyncio.Task[None], grpc.aio.Channel] = {}

    def current(self) -> grpc.aio.Channel:
        if self._watch.changed():
            try:
                fresh = self._make()
            except ValueError as error:  # ConfigError: half a rotation, a bad file
                log.warning("gRPC client TLS files not reloaded: %s", error)
            else:
                old, self._channel = self._channel, fresh
                log.info(
                    "gRPC client TLS files reloaded: new channel", extra={"event": "tls_reloaded"}
                )
                task = asyncio.get_running_loop().create_task(old.close(RETIRE_GRACE))
                self._retired[task] = old
                task.add_done_callback(self._retired.pop)
        return self._channel

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Callable(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Callable(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Callable(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Callable(self, "stream_stream", args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    async def close(self, grace: float | None = None) -> None:
        retired = list(self._retired.items())
        for task, _ in retired:
            task.cancel()
        for _, old in retired:
            await old.close()
        await self._channel.close(grace)

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
