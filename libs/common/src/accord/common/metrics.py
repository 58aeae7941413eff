"""Prometheus exposition for the gRPC services (the edge serves /metrics itself)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


@contextmanager
def metrics_server(addr: tuple[str, int] | None) -> Iterator[int | None]:
    """Serve ``/metrics`` on ``addr`` for the block's duration; yields the bound port."""
    if addr is None:
        yield None
        return
    host, port = addr
    server: WSGIServer
    thread: threading.Thread
    server, thread = start_http_server(port, addr=host)
    bound = int(server.server_port)
    log.info("metrics on %s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
