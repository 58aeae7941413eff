"""Settings.from_env: defaults, accepted values, and one clear line for bad ones."""

from __future__ import annotations

import pytest
from accord.common.config import ConfigError
from accord.presence.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.presence_addr == ("127.0.0.1", 50052)
    assert settings.metrics_addr == ("127.0.0.1", 9102)
    assert settings.redis_url is None
    assert settings.redis_prefix == "accord"
    assert settings.heartbeat_interval == 30.0
    assert settings.presence_ttl == 90.0
    assert settings.sweep_interval == 1.0
    assert settings.max_state_bytes == 4096
    assert settings.max_rooms_per_session == 100
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert settings == Settings()


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "PRESENCE_ADDR": "0.0.0.0:0",
            "METRICS_ADDR": "[::1]:0",
            "REDIS_URL": "redis://cache:6379/1",
            "REDIS_PREFIX": "acc-test",
            "HEARTBEAT_INTERVAL": "2",
            "SWEEP_INTERVAL": "0.25",
            "MAX_STATE_BYTES": "100",
            "MAX_ROOMS_PER_SESSION": "5",
            "WATCH_QUEUE_SIZE": "7",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
        }
    )
    assert settings.presence_addr == ("0.0.0.0", 0)
    assert settings.metrics_addr == ("::1", 0)
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.redis_prefix == "acc-test"
    assert settings.heartbeat_interval == 2.0
    assert settings.presence_ttl == 6.0  # 3 heartbeats
    assert settings.sweep_interval == 0.25
    assert (settings.max_state_bytes, settings.max_rooms_per_session) == (100, 5)
    assert settings.watch_queue_size == 7
    assert (settings.log_level, settings.log_format) == ("debug", "json")


def test_empty_metrics_addr_disables_metrics() -> None:
    assert Settings.from_env({"METRICS_ADDR": ""}).metrics_addr is None


def test_sweep_interval_follows_a_short_ttl() -> None:
    settings = Settings.from_env({"HEARTBEAT_INTERVAL": "0.1", "PRESENCE_TTL": "0.3"})
    assert settings.sweep_interval == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PRESENCE_ADDR": "nohost"}, "PRESENCE_ADDR"),
        ({"PRESENCE_ADDR": "127.0.0.1:70000"}, "PRESENCE_ADDR"),
        ({"METRICS_ADDR": "x:y"}, "METRICS_ADDR"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"REDIS_PREFIX": "has space"}, "REDIS_PREFIX"),
        ({"HEARTBEAT_INTERVAL": "soon"}, "HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": "0"}, "HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": "10", "PRESENCE_TTL": "10"}, "PRESENCE_TTL"),
        ({"PRESENCE_TTL": "-1"}, "PRESENCE_TTL"),
        ({"SWEEP_INTERVAL": "0"}, "SWEEP_INTERVAL"),
        ({"MAX_STATE_BYTES": "big"}, "MAX_STATE_BYTES"),
        ({"MAX_ROOMS_PER_SESSION": "0"}, "MAX_ROOMS_PER_SESSION"),
        ({"WATCH_QUEUE_SIZE": "0"}, "WATCH_QUEUE_SIZE"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert names in message
    assert "\n" not in message


def test_main_stops_with_exit_code_2_on_bad_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.presence.__main__ import main

    monkeypatch.setenv("HEARTBEAT_INTERVAL", "soon")
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2
    assert "HEARTBEAT_INTERVAL" in capsys.readouterr().err
