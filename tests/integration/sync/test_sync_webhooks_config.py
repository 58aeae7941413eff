"""WEBHOOKS_FILE: validated with one clear line, secrets kept out of every message,
re-read when it changes (the endpoints in force stay when the new file is bad)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from accord.common.config import ConfigError
from accord.sync.delivery import backoff
from accord.sync.settings import Settings
from accord.sync.webhooks import EndpointDefaults, WebhookRouter, load_config, parse_config

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def endpoint(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "billing",
        "url": "https://hooks.example.com/accord?token=t0p",
        "rooms": ["invoice:*"],
        "events": ["changes"],
        "secret": SECRET,
    }
    raw.update(fields)
    return {k: v for k, v in raw.items() if v is not None}


def text(*endpoints: dict[str, Any]) -> str:
    return json.dumps({"endpoints": list(endpoints)})


def test_a_valid_file_gives_endpoints_with_defaults_and_routes() -> None:
    config = parse_config(
        text(endpoint(), endpoint(id="audit", rooms=["*"], timeout=2, max_attempts=3)),
        EndpointDefaults(timeout=7.0, max_attempts=4),
        "f",
    )
    billing, audit = config.endpoints
    assert (billing.timeout, billing.max_attempts) == (7.0, 4)
    assert (audit.timeout, audit.max_attempts) == (2.0, 3)
    assert config.routes("invoice:42") == ("billing", "audit")
    assert config.routes("chat") == ("audit",)
    assert billing.shown_url == "https://hooks.example.com/accord"
    assert SECRET[6:] not in repr(config)


def test_the_id_defaults_to_the_url() -> None:
    (only,) = parse_config(text(endpoint(id=None)), EndpointDefaults(), "f").endpoints
    assert only.id == "https://hooks.example.com/accord?token=t0p"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "not valid JSON"),
        ('{"hooks": []}', "must be a JSON object"),
        (text(endpoint(url="ftp://x")), "url must be an http"),
        (text(endpoint(rooms=[])), "rooms must be a non-empty list"),
        (text(endpoint(events=["clicks"])), "events must be"),
        (text(endpoint(secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")), "whsec_"),
        (text(endpoint(secret="whsec_%%%")), "not valid base64"),
        (text(endpoint(secret="whsec_c2hvcnQ=")), "24-64 bytes"),
        (text(endpoint(timeout=0)), "timeout must be"),
        (text(endpoint(max_attempts=0)), "max_attempts must be"),
        (text(endpoint(id="has space")), "id must be"),
        (text(endpoint(colour="red")), "unknown field 'colour'"),
        (text(endpoint(), endpoint()), "appears twice"),
    ],
)
def test_a_bad_file_is_one_clear_error_without_the_secret(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_config(raw, EndpointDefaults(), "WEBHOOKS_FILE='w.json'")
    assert "WEBHOOKS_FILE='w.json'" in str(raised.value)
    assert SECRET[6:] not in str(raised.value)


def test_settings_read_the_file_and_refuse_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text(text(endpoint()))
    settings = Settings.from_env(
        {"WEBHOOKS_FILE": str(path), "WEBHOOK_TIMEOUT": "3", "WEBHOOK_CONCURRENCY": "0"}
    )
    assert [e.id for e in settings.webhooks.endpoints] == ["billing"]
    assert settings.webhooks.endpoints[0].timeout == 3.0
    assert settings.webhook_concurrency == 0
    path.write_text(text(endpoint(rooms="invoice:*")))
    with pytest.raises(ConfigError, match="rooms must be"):
        Settings.from_env({"WEBHOOKS_FILE": str(path)})
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings.from_env({"WEBHOOKS_FILE": str(tmp_path / "missing.json")})
    with pytest.raises(ConfigError, match="WEBHOOK_BACKOFF_MAX"):
        Settings.from_env({"WEBHOOK_BACKOFF_BASE": "10", "WEBHOOK_BACKOFF_MAX": "5"})


def test_the_router_reloads_a_changed_file_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text(text(endpoint()))
    results: list[bool] = []
    router = WebhookRouter(
        load_config(str(path), EndpointDefaults()), str(path), on_reload=results.append
    )
    assert router.endpoints("invoice:1") == ("billing",)
    assert router.reload() is False  # unchanged
    path.write_text(text(endpoint(rooms=["order:*"])))
    os.utime(path, ns=(1, 1))
    assert router.reload() is True
    assert router.endpoints("invoice:1") == () and router.endpoints("order:1") == ("billing",)
    path.write_text("{ broken")
    assert router.reload() is False
    assert router.endpoints("order:1") == ("billing",)
    assert results == [True, False]


def test_backoff_doubles_up_to_its_maximum_with_jitter_in_the_upper_half() -> None:
    low = [backoff(n, 1.0, 60.0, lambda: 0.0) for n in range(1, 9)]
    high = [backoff(n, 1.0, 60.0, lambda: 1.0) for n in range(1, 9)]
    assert high == [1, 2, 4, 8, 16, 32, 60, 60]
    assert low == [h / 2 for h in high]
