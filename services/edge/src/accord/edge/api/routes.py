"""The routes of ``/api/v1`` (docs/server-api.md): thin handlers over the push and read
paths WebSocket clients use — ``parse_change`` and ``SyncClient.push`` for writes, sync's
Pull / ReadRecords / GetRecord and presence's List / Broadcast for the rest."""

from __future__ import annotations

from typing import Any

import grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.common import jsontext
from accord.common.audit import NULL, AuditLog
from accord.edge.api import openapi
from accord.edge.api.access import Gate
from accord.edge.api.errors import ApiError, error_middleware
from accord.edge.api.keys import KeyRing
from accord.edge.api.params import (
    decode_cursor,
    encode_cursor,
    int_param,
    json_body,
    name_param,
)
from accord.edge.auth import CLIENT_ID_RE, NAME_RE, Authenticator, Identity
from accord.edge.backends import PresenceClient, SyncClient
from accord.edge.hooks import NO_HOOKS, EdgeHooks, connection_of, public_identity
from accord.edge.limits import SharedBuckets
from accord.edge.ops import parse_change
from accord.edge.protocol import ChangesOut
from accord.edge.results import push_results
from accord.edge.revocations import Revocations
from accord.edge.settings import Settings
from accord.extensions import Session
from aiohttp import web

BASE = "/api/v1"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_SEQ = 2**63 - 1
MAX_CURSOR = 256
RESPONSE_BYTES = 4 * 1024 * 1024
"""A changes answer stops adding changes past this size (the caller pages on)."""
GONE_RECORDS = (
    "this page can no longer be read at its listing's seq (compaction has passed it, or the "
    "room's history is not the one it was read from): restart paging (without after)"
)
GONE_CHANGES = "since is older than the retained log: read the records instead"


def _json(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _record_json(collection: str, key: str, value_json: str) -> str:
    dumps = jsontext.dumps
    return f'{{"collection":{dumps(collection)},"key":{dumps(key)},"value":{value_json}}}'


class ServerApi:
    def __init__(
        self,
        settings: Settings,
        auth: Authenticator,
        sync: SyncClient,
        presence: PresenceClient,
        revocations: Revocations | None = None,
        audit: AuditLog = NULL,
        hooks: EdgeHooks = NO_HOOKS,
    ) -> None:
        api = settings.api
        self._settings = settings
        self._hooks = hooks
        self._sync = sync
        self._presence = presence
        self._gate = Gate(
            auth,
            KeyRing(api.keys_file, api.keys, api.keys_reload_interval),
            SharedBuckets(api.rate_limit, api.rate_burst),
            settings.allowed_origins,
            Revocations() if revocations is None else revocations,
            audit,
        )
        self._document = jsontext.dumps(openapi.document())

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(error_middleware(BASE))
        router = app.router
        router.add_get(f"{BASE}/openapi.json", self.openapi, allow_head=False)
        room = f"{BASE}/rooms/{{room}}"
        router.add_post(f"{room}/changes", self.push)
        router.add_get(f"{room}/changes", self.changes, allow_head=False)
        router.add_get(f"{room}/records", self.records, allow_head=False)
        router.add_get(f"{room}/records/{{collection}}/{{key:.+}}", self.record, allow_head=False)
        router.add_get(f"{room}/presence", self.presence_list, allow_head=False)
        router.add_post(f"{room}/broadcast", self.broadcast)

    async def _room(self, request: web.Request, *, write: bool) -> tuple[str, Identity]:
        identity = await self._gate.identity(request)
        room = request.match_info["room"]
        if not NAME_RE.match(room):
            raise ApiError("BAD_REQUEST", "room must be 1-128 characters of [A-Za-z0-9_.:-]")
        self._gate.room(request, identity, room, write=write)
        return room, identity

    async def _body(self, request: web.Request) -> dict[str, Any]:
        settings = self._settings
        return await json_body(request, settings.max_message_size, settings.max_json_depth)

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(self._document)

    async def push(self, request: web.Request) -> web.Response:
        room, identity = await self._room(request, write=True)
        body = await self._body(request)
        client_id = body.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
            raise ApiError("BAD_REQUEST", "client_id must be 1-64 characters of [A-Za-z0-9_.:-]")
        changes = body.get("changes")
        if not isinstance(changes, list) or not changes:
            raise ApiError("BAD_REQUEST", "changes must be a non-empty list")
        max_batch = self._settings.max_batch_changes
        if len(changes) > max_batch:
            raise ApiError("TOO_LARGE", f"more than {max_batch} changes in one push")
        push = spb.PushRequest(
            room=room,
            user_id=identity.user_id,
            client_id=client_id,
            changes=[parse_change(c, room, i) for i, c in enumerate(changes)],
        )
        hooks = self._hooks
        if hooks.before_push.active:
            connection = connection_of(request, "api")
            caller = Session("", client_id, public_identity(identity), connection)
            results = await hooks.push(self._sync, caller, push, changes)
        else:
            results = push_results(await self._sync.push(push))
        return web.json_response({"room": room, "results": results}, dumps=jsontext.dumps)

    async def _head(self, room: str) -> int:
        response: spb.HeadResponse = await self._sync.stub.Head(
            spb.HeadRequest(room=room), timeout=self._sync.timeout
        )
        return int(response.head)

    async def changes(self, request: web.Request) -> web.Response:
        room, _ = await self._room(request, write=False)
        since = int_param(request, "since", 0, 0, MAX_SEQ - MAX_LIMIT)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        until = since + limit
        target, size = 0, 0
        changes: list[spb.CommittedChange] = []
        pull = self._sync.pull(room, since, until, changes_only=True)
        try:
            async for item in pull:
                kind = item.WhichOneof("item")
                if kind == "head":
                    target = item.head
                elif kind == "changes":
                    for change in item.changes.changes:
                        size += len(change.patch_json) + 128
                        if changes and size > RESPONSE_BYTES:
                            break
                        changes.append(change)
                if size > RESPONSE_BYTES:
                    break
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.OUT_OF_RANGE:
                head = await self._head(room)
                if since > head:
                    raise ApiError(
                        "BAD_REQUEST", f"since {since} is ahead of head {head}"
                    ) from None
            raise ApiError.of_rpc(error, gone=GONE_CHANGES) from None
        finally:
            cancel = getattr(pull, "cancel", None)
            if cancel is not None:
                cancel()
        head = target if target < until else await self._head(room)
        # The changes exactly as a WebSocket client receives them (ChangesOut's encoding).
        delivered = ChangesOut(room, changes).text().decode()
        tail = delivered[delivered.index('"changes":') :]
        return _json(f'{{"room":{jsontext.dumps(room)},"head":{head},{tail}')

    async def records(self, request: web.Request) -> web.Response:
        room, _ = await self._room(request, write=False)
        collection = name_param(request.query.get("collection"), "collection")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        read = spb.ReadRecordsRequest(room=room, collection=collection or "", limit=limit)
        after = request.query.get("after")
        if after:
            read.as_of, (read.after_collection, read.after_key) = decode_cursor(after, collection)
        try:
            page: spb.ReadRecordsResponse = await self._sync.stub.ReadRecords(
                read, timeout=self._sync.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise ApiError.of_rpc(error, gone=GONE_RECORDS) from None
        records = ",".join(_record_json(r.collection, r.key, r.value_json) for r in page.records)
        next_cursor = "null"
        if page.more and page.records:
            last = page.records[-1]
            cursor = encode_cursor(page.seq, collection, (last.collection, last.key))
            next_cursor = jsontext.dumps(cursor)
        return _json(
            f'{{"room":{jsontext.dumps(room)},"seq":{page.seq},'
            f'"records":[{records}],"next":{next_cursor}}}'
        )

    async def record(self, request: web.Request) -> web.Response:
        room, _ = await self._room(request, write=False)
        collection = name_param(request.match_info["collection"], "collection")
        key = name_param(request.match_info["key"], "key")
        assert collection is not None and key is not None
        try:
            found: spb.GetRecordResponse = await self._sync.stub.GetRecord(
                spb.GetRecordRequest(room=room, collection=collection, key=key),
                timeout=self._sync.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise ApiError.of_rpc(error) from None
        if not found.found:
            raise ApiError("NOT_FOUND", f"room {room} has no record {collection}/{key}")
        record = _record_json(collection, key, found.record.value_json)
        return _json(f'{record[:-1]},"seq":{found.seq}}}')

    async def presence_list(self, request: web.Request) -> web.Response:
        room, _ = await self._room(request, write=False)
        limit = int_param(request, "limit", self._settings.presence_sync_limit, 1, MAX_LIMIT)
        cursor = request.query.get("cursor", "")
        if len(cursor) > MAX_CURSOR:
            raise ApiError("BAD_REQUEST", f"cursor must be at most {MAX_CURSOR} characters")
        try:
            page = await self._presence.list(room, limit=limit, cursor=cursor)
        except grpc.aio.AioRpcError as error:
            raise ApiError.of_rpc(error) from None
        return web.json_response(
            {
                "room": room,
                "peers": page["peers"],
                "count": page["count"],
                "users": page["users"],
                "next_cursor": page.get("next_cursor"),
            },
            dumps=jsontext.dumps,
        )

    async def broadcast(self, request: web.Request) -> web.Response:
        room, _ = await self._room(request, write=True)
        body = await self._body(request)
        if "data" not in body:
            raise ApiError("BAD_REQUEST", "broadcast needs data")
        channel = body.get("channel", "")
        if channel is None:
            channel = ""
        if not isinstance(channel, str) or (channel and not CLIENT_ID_RE.match(channel)):
            raise ApiError("BAD_REQUEST", "channel must be 1-64 characters of [A-Za-z0-9_.:-]")
        try:
            # No sender session: subscribers see it "from":"server", and presence does not
            # hold it back as it does one client's stream (the caller's rate limit applies).
            await self._presence.broadcast(room, "", body["data"], channel)
        except grpc.aio.AioRpcError as error:
            raise ApiError.of_rpc(error) from None
        return web.json_response({"room": room}, status=202, dumps=jsontext.dumps)
