"""The OpenAPI document names every route the edge registers under /api/v1, and is valid."""

from __future__ import annotations

import re

from accord.common import grpcutil
from accord.edge.api.openapi import document
from accord.edge.api.routes import ServerApi
from accord.edge.auth import Authenticator
from accord.edge.backends import PresenceClient, SyncClient
from accord.edge.settings import Settings
from aiohttp import web
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.support.wsclient import SECRET


def _template(path: str) -> str:
    # aiohttp's {key:.+} is the document's {key}
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


async def test_every_api_route_is_in_the_document() -> None:
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    channel = grpcutil.create_channel("127.0.0.1:1")
    try:
        app = web.Application()
        sync, presence = SyncClient(channel, 1.0), PresenceClient(channel, 1.0, "edge")
        ServerApi(settings, Authenticator(settings.identity), sync, presence).add_routes(app)
    finally:
        await channel.close()
    paths = document()["paths"]
    registered = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/"):
            registered.add((_template(path), route.method.lower()))
    documented = {(path, method) for path, item in paths.items() for method in item}
    assert registered, "no /api/v1 routes registered"
    assert registered == documented


def _refs(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for item in value.values() for r in _refs(item)]
    if isinstance(value, list):
        return [r for item in value for r in _refs(item)]
    return []


def test_the_document_is_openapi_3_1_with_valid_schemas_and_refs() -> None:
    spec = document()
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    for ref in _refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)
