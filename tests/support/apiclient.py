"""A plain HTTP client for the server API in tests: every answer it gets is checked against
the edge's own OpenAPI document (the status documented, the body matching its schema)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class OpenApi:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._routes = [
            (re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", path.replace("{key}", ".+")) + "$"), path)
            for path in document["paths"]
        ]

    def template(self, path: str) -> str:
        path = path.split("?", 1)[0]
        matches = [template for pattern, template in self._routes if pattern.match(path)]
        assert matches, f"{path} is not in the OpenAPI document"
        return str(max(matches, key=len))

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        operation = self.document["paths"][self.template(path)][method.lower()]
        responses = operation["responses"]
        response = responses.get(str(status)) or responses.get("default")
        assert response is not None, f"{method} {path}: status {status} is not documented"
        content = response.get("content")
        if content is None:
            return
        schema = dict(content["application/json"]["schema"])
        schema["components"] = self.document["components"]
        Draft202012Validator(schema).validate(body)


class ApiClient:
    def __init__(self, base_url: str, document: dict[str, Any]) -> None:
        self.base_url = base_url
        self.openapi = OpenApi(document)
        self.http = aiohttp.ClientSession()

    @classmethod
    async def open(cls, base_url: str) -> ApiClient:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base_url}/api/v1/openapi.json") as response,
        ):
            assert response.status == 200
            document = await response.json()
        return cls(base_url, document)

    async def close(self) -> None:
        await self.http.close()

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if raw is not None:
            kwargs["data"] = raw
            sent.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, f"{self.base_url}{path}", **kwargs) as response:
            payload = await response.json(content_type=None)
            answer = Answer(response.status, payload, dict(response.headers))
        self.openapi.check(method, path, answer.status, answer.body)
        if answer.status >= 400:
            assert set(answer.body) >= {"code", "message"}
        return answer
