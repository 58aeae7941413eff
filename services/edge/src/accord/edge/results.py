"""A push's results as clients see them: the ``results`` of an ``ack`` (WebSocket) and of
``POST /api/v1/rooms/{room}/changes`` (server API) — one formatting for both."""

from __future__ import annotations

from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb


def push_results(response: spb.PushResponse) -> list[dict[str, Any]]:
    results = []
    for result in response.results:
        item: dict[str, Any] = {
            "client_seq": result.client_seq,
            "seq": result.seq,
            "status": "duplicate" if result.status == spb.CHANGE_STATUS_DUPLICATE else "applied",
        }
        if result.HasField("error"):  # refused by an extension or a record schema
            item["status"] = "error"
            item["error"] = {"code": result.error.reason, "message": result.error.message}
            if result.error.json_path:
                item["error"]["json_path"] = result.error.json_path
        if result.ts_adjusted:
            item["ts"] = result.ts
        if result.conflicts:
            item["conflicts"] = [
                {"field": c.field, "winner": {"ts": c.winner_ts, "client_id": c.winner_client_id}}
                for c in result.conflicts
            ]
        results.append(item)
    return results
