"""Every protocol error code maps to its own exception class."""

from __future__ import annotations

import pytest
from accord.client import errors
from accord.client.errors import AccordError, error_from_message

CODES = {
    "BAD_REQUEST": errors.BadRequest,
    "UNAUTHENTICATED": errors.Unauthenticated,
    "TOKEN_EXPIRED": errors.TokenExpired,
    "FORBIDDEN": errors.Forbidden,
    "NOT_SUBSCRIBED": errors.NotSubscribed,
    "RATE_LIMITED": errors.RateLimited,
    "TOO_LARGE": errors.TooLarge,
    "UNSUPPORTED": errors.Unsupported,
    "UNAVAILABLE": errors.Unavailable,
    "INTERNAL": errors.Internal,
}


@pytest.mark.parametrize(("code", "cls"), CODES.items())
def test_each_code_has_its_class(code: str, cls: type[AccordError]) -> None:
    error = error_from_message(
        {"type": "error", "id": 7, "code": code, "message": "m", "room": "r"}
    )
    assert type(error) is cls
    assert isinstance(error, AccordError)
    assert error.code == code
    assert (error.request_id, error.room, error.message) == (7, "r", "m")


def test_classes_are_distinct_and_cover_the_protocol() -> None:
    assert len(set(CODES.values())) == len(CODES)
    assert set(errors.ERRORS) == set(CODES)


def test_rate_limited_carries_retry_after() -> None:
    error = error_from_message({"type": "error", "code": "RATE_LIMITED", "retry_after_ms": 250})
    assert isinstance(error, errors.RateLimited)
    assert error.retry_after_ms == 250
    assert error.retryable


def test_token_expired_is_an_unauthenticated_and_unknown_codes_are_internal() -> None:
    assert isinstance(error_from_message({"code": "TOKEN_EXPIRED"}), errors.Unauthenticated)
    unknown = error_from_message({"code": "SOMETHING_NEW", "message": "?"})
    assert type(unknown) is errors.Internal
    assert "SOMETHING_NEW" in str(unknown)
