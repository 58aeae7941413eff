from __future__ import annotations

import pytest
from accord.common.config import ConfigError
from accord.sync.settings import PostgresTarget, Settings, SqliteTarget


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.sync_addr == ("127.0.0.1", 50051)
    assert settings.metrics_addr == ("127.0.0.1", 9101)
    assert settings.database == SqliteTarget("data/accord.db")
    assert settings.redis_url is None
    assert settings.redis_prefix == "accord"
    assert settings.max_clock_skew_us == 60_000_000
    assert (settings.max_batch_changes, settings.max_record_bytes, settings.max_json_depth) == (
        1000,
        262144,
        32,
    )
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert (settings.log_retention, settings.conflict_retention) == (10_000, 1000)
    assert settings.recheck_interval == 30.0


def test_good_values() -> None:
    settings = Settings.from_env(
        {
            "SYNC_ADDR": "0.0.0.0:0",
            "METRICS_ADDR": "",
            "DATABASE_URL": "postgres://u@db:5432/accord",
            "REDIS_URL": "redis://cache:6379/0",
            "REDIS_PREFIX": "acc-1",
            "BUS_SHARDS": "64",
            "BUS_SKIP_UNHEARD": "false",
            "MAX_CLOCK_SKEW": "2.5",
            "MAX_BATCH_CHANGES": "10",
            "MAX_RECORD_BYTES": "1024",
            "MAX_JSON_DEPTH": "4",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "LOG_RETENTION": "0",
            "CONFLICT_RETENTION": "5",
            "ROOM_MEMORY_BYTES": "0",
            "RECHECK_INTERVAL": "0",
        }
    )
    assert settings.recheck_interval == 0.0
    assert (settings.log_retention, settings.conflict_retention) == (0, 5)
    assert settings.room_memory_bytes == 0
    assert settings.sync_addr == ("0.0.0.0", 0)
    assert settings.metrics_addr is None
    assert settings.database == PostgresTarget("postgres://u@db:5432/accord")
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.redis_prefix == "acc-1"
    assert settings.bus_shards == 64
    assert settings.bus_skip_unheard is False
    assert Settings.from_env({}).bus_skip_unheard is True
    assert settings.max_clock_skew_us == 2_500_000
    assert (settings.max_batch_changes, settings.max_record_bytes, settings.max_json_depth) == (
        10,
        1024,
        4,
    )
    assert (settings.log_level, settings.log_format) == ("debug", "json")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("sqlite:///data/x.db", SqliteTarget("data/x.db")),
        ("sqlite:////var/lib/accord.db", SqliteTarget("/var/lib/accord.db")),
        ("sqlite://:memory:", SqliteTarget(":memory:")),
        (
            "postgresql://postgres@127.0.0.1/test",
            PostgresTarget("postgresql://postgres@127.0.0.1/test"),
        ),
    ],
)
def test_database_urls(url: str, target: object) -> None:
    assert Settings.from_env({"DATABASE_URL": url}).database == target


@pytest.mark.parametrize(
    ("name", "value", "mentions"),
    [
        ("SYNC_ADDR", "nohost", "SYNC_ADDR"),
        ("SYNC_ADDR", "h:99999", "SYNC_ADDR"),
        ("METRICS_ADDR", "h:x", "METRICS_ADDR"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("DATABASE_URL", "sqlite://relative.db", "DATABASE_URL"),
        ("DATABASE_URL", "postgresql://", "DATABASE_URL"),
        ("REDIS_URL", "http://x", "REDIS_URL"),
        ("REDIS_PREFIX", "a b", "REDIS_PREFIX"),
        ("BUS_SHARDS", "0", "BUS_SHARDS"),
        ("BUS_SHARDS", "5000", "BUS_SHARDS"),
        ("BUS_SKIP_UNHEARD", "sometimes", "BUS_SKIP_UNHEARD"),
        ("MAX_CLOCK_SKEW", "soon", "MAX_CLOCK_SKEW"),
        ("MAX_CLOCK_SKEW", "-1", "MAX_CLOCK_SKEW"),
        ("MAX_BATCH_CHANGES", "0", "MAX_BATCH_CHANGES"),
        ("MAX_RECORD_BYTES", "1e3", "MAX_RECORD_BYTES"),
        ("MAX_JSON_DEPTH", "100000", "MAX_JSON_DEPTH"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_RETENTION", "-1", "LOG_RETENTION"),
        ("CONFLICT_RETENTION", "0", "CONFLICT_RETENTION"),
        ("ROOM_MEMORY_BYTES", "-1", "ROOM_MEMORY_BYTES"),
        ("ROOM_MEMORY_BYTES", "8MB", "ROOM_MEMORY_BYTES"),
        ("ROOM_MEMORY_BYTES", str(2**37), "ROOM_MEMORY_BYTES"),
        ("RECHECK_INTERVAL", "often", "RECHECK_INTERVAL"),
        ("RECHECK_INTERVAL", "-5", "RECHECK_INTERVAL"),
        ("SYNC_PUSH_SOCKET", "run/push.sock", "SYNC_PUSH_SOCKET"),
        ("SYNC_PUSH_SOCKET", "/run/accord/", "SYNC_PUSH_SOCKET"),
        ("SYNC_PUSH_SOCKET", "/" + "s" * 107, "SYNC_PUSH_SOCKET"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(name: str, value: str, mentions: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert mentions in message
    assert "\n" not in message
