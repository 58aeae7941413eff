"""The OpenAPI 3.1 description of ``/api/v1``, served at ``GET /api/v1/openapi.json``.

Tests hold it to the router (every route is in it) and every response of the
tests to its schemas (docs/server-api.md).
"""

from __future__ import annotations

from typing import Any

from accord.edge.api.errors import CODES

NAME = "^[A-Za-z0-9_.:-]{1,128}$"
CLIENT_ID = "^[A-Za-z0-9_.:-]{1,64}$"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


_TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": 256}
_SEQ: Schema = {"type": "integer", "minimum": 0}
_ANY: Schema = {}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        ["code", "message"],
        {
            "code": {"type": "string", "enum": list(CODES)},
            "message": {"type": "string"},
            "retry_after_ms": {"type": "integer", "minimum": 1},
        },
    ),
    "Op": {
        "type": "object",
        "required": ["kind"],
        "description": "set / delete / incr / add / remove / insert / remove_items, as in a "
        "WebSocket push (docs/protocol.md)",
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["set", "delete", "incr", "add", "remove", "insert", "remove_items"],
            },
            "fields": {"type": "object"},
            "field": _TEXT,
            "by": {"type": "integer"},
            "values": {"type": "array", "minItems": 1},
            "seen": _SEQ,
            "after": {"type": ["string", "null"]},
            "ids": {"type": "array", "items": _TEXT, "minItems": 1},
        },
    },
    "Change": _object(
        ["client_seq", "collection", "key", "op"],
        {
            "client_seq": {"type": "integer", "minimum": 1},
            "collection": _TEXT,
            "key": _TEXT,
            "ts": {"type": "integer", "minimum": 0},
            "op": _ref("Op"),
        },
    ),
    "Push": _object(
        ["client_id", "changes"],
        {
            "client_id": {"type": "string", "pattern": CLIENT_ID},
            "changes": {"type": "array", "items": _ref("Change"), "minItems": 1, "maxItems": 1000},
        },
    ),
    "Result": _object(
        ["client_seq", "seq", "status"],
        {
            "client_seq": {"type": "integer", "minimum": 1},
            "seq": _SEQ,
            "status": {"type": "string", "enum": ["applied", "duplicate", "error"]},
            "error": _object(
                ["code", "message"],
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "json_path": {"type": "string"},
                },
            ),
            "ts": {"type": "integer"},
            "conflicts": {
                "type": "array",
                "items": _object(
                    ["field", "winner"],
                    {
                        "field": {"type": "string"},
                        "winner": _object(
                            ["ts", "client_id"],
                            {"ts": {"type": "integer"}, "client_id": {"type": "string"}},
                        ),
                    },
                ),
            },
        },
    ),
    "Pushed": _object(
        ["room", "results"],
        {"room": {"type": "string"}, "results": {"type": "array", "items": _ref("Result")}},
    ),
    "Record": _object(
        ["collection", "key", "value"],
        {"collection": {"type": "string"}, "key": {"type": "string"}, "value": {"type": "object"}},
    ),
    "RecordAt": _object(
        ["collection", "key", "value", "seq"],
        {
            "collection": {"type": "string"},
            "key": {"type": "string"},
            "value": {"type": "object"},
            "seq": {"type": "integer", "minimum": 1},
        },
    ),
    "Records": _object(
        ["room", "seq", "records", "next"],
        {
            "room": {"type": "string"},
            "seq": _SEQ,
            "records": {"type": "array", "items": _ref("Record")},
            "next": {"type": ["string", "null"]},
        },
    ),
    "DeliveredChange": _object(
        ["seq", "collection", "key", "client_id", "client_seq", "ts", "patch"],
        {
            "seq": {"type": "integer", "minimum": 1},
            "collection": {"type": "string"},
            "key": {"type": "string"},
            "client_id": {"type": "string"},
            "client_seq": {"type": "integer"},
            "ts": {"type": "integer"},
            "patch": {"type": "object"},
        },
    ),
    "Changes": _object(
        ["room", "head", "changes"],
        {
            "room": {"type": "string"},
            "head": _SEQ,
            "changes": {"type": "array", "items": _ref("DeliveredChange")},
        },
    ),
    "Peer": _object(
        ["session_id", "user_id", "client_id", "user", "state"],
        {
            "session_id": {"type": "string"},
            "user_id": {"type": "string"},
            "client_id": {"type": "string"},
            "user": {"type": "object"},
            "state": {"type": "object"},
        },
    ),
    "Presence": _object(
        ["room", "peers", "count", "users", "next_cursor"],
        {
            "room": {"type": "string"},
            "peers": {"type": "array", "items": _ref("Peer")},
            "count": {"type": "integer", "minimum": 0},
            "users": {"type": "integer", "minimum": 0},
            "next_cursor": {"type": ["string", "null"]},
        },
    ),
    "Broadcast": _object(
        ["data"],
        {"data": _ANY, "channel": {"type": "string", "pattern": CLIENT_ID}},
    ),
    "Accepted": _object(["room"], {"room": {"type": "string"}}),
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": _json("Error")}
    if retry:
        answer["headers"] = {
            "Retry-After": {"description": "seconds", "schema": {"type": "string"}}
        }
    return answer


ERRORS = {
    "400": _error("bad request (malformed JSON, a bad field or parameter)"),
    "401": _error("no or bad credential"),
    "403": _error("the credential has no access to the room (or the origin is not allowed)"),
    "413": _error("the body is too large"),
    "429": _error("rate limited", retry=True),
    "503": _error("a backend is unavailable; try again"),
    "default": _error("any other error"),
}

_ROOM = {
    "name": "room",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NAME},
}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[str, str, str],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, description, schema = ok
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [_ROOM, *(parameters or [])],
        "responses": {status: {"description": description, "content": _json(schema)}, **ERRORS},
    }
    if extra:
        operation["responses"].update(extra)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return operation


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size")

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/rooms/{room}/changes": {
        "post": _operation(
            "pushChanges",
            "push changes (the same shape, rules and results as a WebSocket push)",
            ("200", "the results, as in an ack", "Pushed"),
            body="Push",
        ),
        "get": _operation(
            "listChanges",
            "the changes after since, in seq order, as delivered to clients",
            ("200", "a page of changes", "Changes"),
            parameters=[
                _query("since", {"type": "integer", "minimum": 0}, "the last seq already seen"),
                _LIMIT,
            ],
            extra={"410": _error("since is older than the retained log")},
        ),
    },
    "/api/v1/rooms/{room}/records": {
        "get": _operation(
            "listRecords",
            "the room's records at one seq, page by page",
            ("200", "a page of records", "Records"),
            parameters=[
                _query("collection", _TEXT, "only this collection"),
                _query("after", {"type": "string"}, "the next cursor of the previous page"),
                _LIMIT,
            ],
            extra={"410": _error("the page can no longer be read at its seq: restart paging")},
        ),
    },
    "/api/v1/rooms/{room}/records/{collection}/{key}": {
        "get": _operation(
            "getRecord",
            "one record with the seq of its last change",
            ("200", "the record", "RecordAt"),
            parameters=[
                {"name": "collection", "in": "path", "required": True, "schema": _TEXT},
                {"name": "key", "in": "path", "required": True, "schema": _TEXT},
            ],
            extra={"404": _error("no such record")},
        ),
    },
    "/api/v1/rooms/{room}/presence": {
        "get": _operation(
            "listPresence",
            "a page of the room's peers",
            ("200", "a page of peers", "Presence"),
            parameters=[
                _LIMIT,
                _query("cursor", {"type": "string", "maxLength": 256}, "next_cursor of a page"),
            ],
        ),
    },
    "/api/v1/rooms/{room}/broadcast": {
        "post": _operation(
            "broadcast",
            'send every subscriber a broadcast "from":"server"',
            ("202", "accepted", "Accepted"),
            body="Broadcast",
        ),
    },
}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "this document",
                "security": [],
                "responses": {"200": {"description": "the OpenAPI document"}},
            }
        },
        **PATHS,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Accord server API",
            "version": "1",
            "description": "For application backends; see docs/server-api.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a JWT (as a client's hello token) or an API key (ak_…)",
                }
            },
        },
    }
