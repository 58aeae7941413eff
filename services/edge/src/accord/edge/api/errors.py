"""Errors of the server API: an HTTP status for the class, ``{"code","message"}`` for the
detail (the codes of the client protocol, plus ``NOT_FOUND`` and ``GONE``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import grpc
from accord.common import jsontext
from accord.edge.backends import to_protocol_error
from accord.edge.protocol import ProtocolError
from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)

STATUS = {
    "BAD_REQUEST": 400,
    "UNSUPPORTED": 400,
    "UNAUTHENTICATED": 401,
    "TOKEN_EXPIRED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "GONE": 410,
    "TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}
CODES = tuple(STATUS)


class ApiError(Exception):
    def __init__(self, code: str, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)

    @classmethod
    def of(cls, error: ProtocolError) -> ApiError:
        # NOT_SUBSCRIBED from a backend (presence forgot a session) never concerns a caller.
        code = error.code if error.code in STATUS else "INTERNAL"
        return cls(code, error.message, retry_after_ms=error.retry_after_ms)

    @classmethod
    def of_rpc(cls, error: grpc.aio.AioRpcError, gone: str | None = None) -> ApiError:
        """A failed call to sync or presence; OUT_OF_RANGE is ``GONE`` (with ``gone``)."""
        if gone is not None and error.code() == grpc.StatusCode.OUT_OF_RANGE:
            return cls("GONE", gone)
        return cls.of(to_protocol_error(error))

    def response(self) -> web.Response:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        headers = {}
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
        return web.json_response(body, status=self.status, headers=headers, dumps=jsontext.dumps)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}


def error_middleware(base: str) -> Middleware:
    """Every failure under ``base`` answered as ``{"code","message"}`` with its status."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(base + "/"):
            return await handler(request)
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except ProtocolError as error:
            return ApiError.of(error).response()
        except grpc.aio.AioRpcError as error:
            return ApiError.of_rpc(error).response()
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code = _HTTP_CODES.get(error.status, "BAD_REQUEST")
            response = ApiError(code, error.reason).response()
            response.set_status(error.status)
            if "Allow" in error.headers:
                response.headers["Allow"] = error.headers["Allow"]
            return response
        except TimeoutError:
            return ApiError("UNAVAILABLE", "the service is unavailable, try again").response()
        except Exception:
            log.exception("server API call %s %s failed", request.method, request.path)
            return ApiError("INTERNAL", "internal error").response()

    return errors
