"""The audit log: its record shape, redaction of secrets, its sinks and AUDIT_LOG."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from accord.common.audit import REDACTED, AuditLog, AuditSettings, StreamSink, redact
from accord.common.config import ConfigError

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
API_KEY = "ak_" + "Q" * 43


def test_every_event_has_the_common_fields_in_rfc3339_utc() -> None:
    seen: list[Mapping[str, Any]] = []
    audit = AuditLog("edge", [seen.append])
    audit.emit("auth.failed", ip="203.0.113.7", via="hello", code="UNAUTHENTICATED")
    (event,) = seen
    assert list(event)[:7] == ["time", "event", "service", "actor", "session_id", "ip", "room"]
    assert event["event"] == "auth.failed" and event["service"] == "edge"
    assert event["actor"] is None and event["ip"] == "203.0.113.7"
    assert event["via"] == "hello"
    assert len(event["time"]) == 24 and event["time"].endswith("Z") and event["time"][10] == "T"


def test_secret_bearing_fields_are_dropped_at_any_depth() -> None:
    cleaned = redact(
        {
            "token": "plain-text-secret",
            "admin_token": "x",
            "Authorization": "Bearer y",
            "nested": {"password": "p", "signing_key": "k", "fine": 1},
            "list": [{"secret": "s"}],
            "key_name": "billing",
        }
    )
    assert cleaned == {
        "token": REDACTED,
        "admin_token": REDACTED,
        "Authorization": REDACTED,
        "nested": {"password": REDACTED, "signing_key": REDACTED, "fine": 1},
        "list": [{"secret": REDACTED}],
        "key_name": "billing",
    }


def test_credential_looking_strings_are_dropped_wherever_they_are() -> None:
    seen: list[Mapping[str, Any]] = []
    audit = AuditLog("edge", [seen.append])
    audit.emit(
        "auth.failed",
        reason=f"bad token {JWT} or key {API_KEY}",
        extra=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    text = json.dumps(seen[0])
    for secret in (JWT, API_KEY, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert secret not in text
    assert seen[0]["reason"] == f"bad token {REDACTED} or key {REDACTED}"


def test_a_failing_sink_does_not_stop_the_others_or_the_caller() -> None:
    seen: list[Mapping[str, Any]] = []

    def broken(event: Mapping[str, Any]) -> None:
        raise RuntimeError("disk full")

    audit = AuditLog("edge", [broken, seen.append])
    audit.emit("admin.call", action="peers")
    assert [e["event"] for e in seen] == ["admin.call"]
    audit.remove_sink(seen.append)
    audit.emit("admin.call", action="peers")
    assert len(seen) == 1


def test_stream_sink_writes_json_lines() -> None:
    stream = io.StringIO()
    audit = AuditLog("sync", [StreamSink(stream)])
    audit.emit("webhooks.reloaded", result="ok", endpoints=["a"])
    audit.emit("webhooks.reloaded", result="error", error="bad")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["result"] for line in lines] == ["ok", "error"]


def test_file_sink_appends_and_follows_rotation(tmp_path: Path, monkeypatch: Any) -> None:
    import accord.common.audit as module

    monkeypatch.setattr(module, "REOPEN_CHECK_SECONDS", 0.0)
    path = tmp_path / "audit.log"
    settings = AuditSettings.from_env({"AUDIT_LOG": f"file:{path}"})
    with AuditLog.from_settings(settings, "edge") as audit:
        audit.emit("one")
        os.rename(path, tmp_path / "audit.log.1")  # what logrotate does
        audit.emit("two")
    assert json.loads((tmp_path / "audit.log.1").read_text())["event"] == "one"
    assert json.loads(path.read_text())["event"] == "two"


def test_audit_log_setting() -> None:
    assert AuditSettings.from_env({}).target == "stdout"
    assert AuditSettings.from_env({"AUDIT_LOG": "off"}).target == "off"
    assert not AuditLog.from_settings(AuditSettings("off"), "edge").enabled
    with pytest.raises(ConfigError, match="AUDIT_LOG"):
        AuditSettings.from_env({"AUDIT_LOG": "syslog"})
    with pytest.raises(ConfigError, match="not writable"):
        AuditSettings.from_env({"AUDIT_LOG": "file:/nonexistent-dir/audit.log"})
