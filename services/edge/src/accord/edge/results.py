"""A push's results as clients see them: the ``results`` of an ``ack`` (WebSocket) and of
``POST /api/v1/rooms/{room}/changes`` (server API) — one formatting for both."""

from __future__ import annotations

from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb


def error_result(
    client_seq: int, code: str, message: str, json_path: str | None = None
) -> dict[str, Any]:
    """A change refused (by an extension, a record schema) or whose hook failed: no seq."""
    error = {"code": code, "message": message}
    if json_path:
        error["json_path"] = json_path
    return {"client_seq": client_seq, "seq": 0, "status": "error", "error": error}


def push_results(response: spb.PushResponse) -> list[dict[str, Any]]:
    results = []
    for result in response.results:
        item: dict[str, Any] = {
            "client_seq": result.client_seq,
            "seq": result.seq,
            "status": "duplicate" if result.status == spb.CHANGE_STATUS_DUPLICATE else "applied",
        }
        if result.HasField("error"):  # refused by an extension or a record schema
            error = result.error
            item = error_result(result.client_seq, error.reason, error.message, error.json_path)
            item["seq"] = result.seq
        if result.ts_adjusted:
            item["ts"] = result.ts
        if result.conflicts:
            item["conflicts"] = [
                {"field": c.field, "winner": {"ts": c.winner_ts, "client_id": c.winner_client_id}}
                for c in result.conflicts
            ]
        results.append(item)
    return results
