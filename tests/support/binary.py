"""Protobuf frames for tests: JSON-shaped client messages to ``ClientFrame`` and
``ServerFrame`` back to the JSON shape, so one protocol test runs in both encodings."""

from __future__ import annotations

import json
from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def to_client_frame(message: dict[str, Any]) -> pb.ClientFrame:
    frame = pb.ClientFrame()
    if "id" in message:
        frame.id = message["id"]
    kind = message.get("type")
    if kind == "hello":
        frame.hello.CopyFrom(
            pb.Hello(token=message.get("token") or "", client_id=message.get("client_id", ""))
        )
        if "user" in message:
            frame.hello.user_json = _j(message["user"])
    elif kind == "ping":
        frame.ping.SetInParent()
    elif kind == "refresh":
        frame.refresh.token = message.get("token", "")
    elif kind == "subscribe":
        frame.subscribe.room = message.get("room", "")
        frame.subscribe.since = message.get("since") or 0
        frame.subscribe.users = bool(message.get("users", False))
        if message.get("presence") is not None:
            frame.subscribe.presence_json = _j(message["presence"])
        frame.subscribe.epoch = message.get("epoch") or ""
    elif kind == "unsubscribe":
        frame.unsubscribe.room = message.get("room", "")
    elif kind == "push":
        frame.push.room = message.get("room", "")
        for change in message.get("changes", []):
            frame.push.changes.append(
                pb.PushChange(
                    client_seq=change["client_seq"],
                    collection=change["collection"],
                    key=change["key"],
                    ts=change.get("ts") or 0,
                    op_json=_j(change["op"]),
                )
            )
    elif kind == "presence":
        frame.presence.CopyFrom(
            pb.PresenceState(room=message.get("room", ""), state_json=_j(message.get("state")))
        )
    elif kind == "broadcast":
        frame.broadcast.CopyFrom(
            pb.BroadcastSend(
                room=message.get("room", ""),
                data_json=_j(message.get("data")),
                channel=message.get("channel", ""),
            )
        )
    elif kind == "presence_list":
        frame.presence_list.CopyFrom(
            pb.PresenceList(
                room=message.get("room", ""),
                cursor=message.get("cursor", ""),
                limit=message.get("limit", 0),
                counts_only=message.get("counts_only", False),
            )
        )
    else:
        raise ValueError(f"{kind!r} has no binary form")
    return frame


def _peer(peer: pb.Peer) -> dict[str, Any]:
    return {
        "session_id": peer.session_id,
        "user_id": peer.user_id,
        "client_id": peer.client_id,
        "user": json.loads(peer.user_json or "{}"),
        "state": json.loads(peer.state_json or "{}"),
    }


def from_server_frame(frame: pb.ServerFrame) -> dict[str, Any]:
    kind = frame.WhichOneof("msg")
    body = getattr(frame, kind)
    message: dict[str, Any] = {"type": kind}
    if frame.HasField("id"):
        message["id"] = frame.id
    if kind == "welcome":
        server = body.server
        message.update(
            session_id=body.session_id,
            user_id=body.user_id,
            server={
                "version": server.version,
                "protocol": server.protocol,
                "heartbeat_ms": server.heartbeat_ms,
                "max_message_bytes": server.max_message_bytes,
                "features": list(server.features),
            },
        )
    elif kind in ("subscribed",):
        message.update(room=body.room, head=body.head, epoch=body.epoch)
    elif kind == "unsubscribed":
        message.update(room=body.room)
    elif kind == "snapshot":
        message.update(
            room=body.room,
            seq=body.seq,
            last=body.last,
            epoch=body.epoch,
            records=[
                {"collection": r.collection, "key": r.key, "value": json.loads(r.value_json)}
                for r in body.records
            ],
        )
    elif kind == "changes":
        message.update(
            room=body.room,
            changes=[
                {
                    "seq": c.seq,
                    "collection": c.collection,
                    "key": c.key,
                    "client_id": c.client_id,
                    "client_seq": c.client_seq,
                    "ts": c.ts,
                    "patch": json.loads(c.patch_json),
                }
                for c in body.changes
            ],
        )
    elif kind == "ack":
        results = []
        for r in body.results:
            item: dict[str, Any] = {"client_seq": r.client_seq, "seq": r.seq, "status": r.status}
            if r.HasField("ts"):
                item["ts"] = r.ts
            if r.conflicts:
                item["conflicts"] = [
                    {
                        "field": c.field,
                        "winner": {"ts": c.winner_ts, "client_id": c.winner_client_id},
                    }
                    for c in r.conflicts
                ]
            results.append(item)
        message.update(room=body.room, results=results)
    elif kind == "presence":
        message.update(room=body.room, event=body.event)
        if body.event == "sync":
            message["peers"] = [_peer(p) for p in body.peers]
            message["count"] = body.count
            message["users"] = body.users
            if body.next_cursor:
                message["next_cursor"] = body.next_cursor
        else:
            message["peer"] = _peer(body.peer)
        if body.reason:
            message["reason"] = body.reason
    elif kind == "presence_page":
        message.update(
            room=body.room, peers=[_peer(p) for p in body.peers], count=body.count, users=body.users
        )
        if body.next_cursor:
            message["next_cursor"] = body.next_cursor
    elif kind == "broadcast":
        message.update(
            room=body.room, data=json.loads(body.data_json), **{"from": getattr(body, "from")}
        )
        if body.channel:
            message["channel"] = body.channel
    elif kind == "error":
        message.update(code=body.code, message=body.message)
        if body.room:
            message["room"] = body.room
        if body.HasField("retry_after_ms"):
            message["retry_after_ms"] = body.retry_after_ms
    return message
