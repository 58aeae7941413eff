"""Protobuf frames for tests: JSON-shaped client messages to ``ClientFrame`` and
``ServerFrame`` back to the JSON shape, so one protocol test runs in both encodings.

The mapping is the edge's own (``accord.edge.codec``), used in the other direction."""

from __future__ import annotations

from accord.edge.codec import from_server_frame, to_client_frame

__all__ = ["from_server_frame", "to_client_frame"]
