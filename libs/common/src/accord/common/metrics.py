"""Prometheus exposition for the gRPC services (the edge serves /metrics itself)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from accord.common.config import format_addr
from accord.common.lifecycle import BindError
from prometheus_client import start_http_server

log = logging.getLogger(__name__)

CALL_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
"""Histogram buckets for a call's latency, from half a millisecond (gRPC calls, commits)."""
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Histogram buckets for how many items went together (a batched call, a commit group)."""


@contextmanager
def metrics_server(addr: tuple[str, int] | None) -> Iterator[int | None]:
    """Serve ``/metrics`` on ``addr`` for the block's duration; yields the bound port.

    An address it cannot listen on is a ``BindError`` naming ``METRICS_ADDR``.
    """
    if addr is None:
        yield None
        return
    host, port = addr
    server: WSGIServer
    thread: threading.Thread
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as error:
        reason = error.strerror or str(error)
        raise BindError("METRICS_ADDR", format_addr(host, port), reason) from None
    bound = int(server.server_port)
    log.info("metrics on %s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
