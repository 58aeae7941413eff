"""The scenarios and their sizes, full (`make bench`) and smoke (`make bench-smoke`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Load:
    """A rising-rate load scenario (S1-S4)."""

    name: str
    title: str
    clients: int
    room_size: int
    rates: list[float]  # updates/s per active client, one step each
    duration: float  # seconds per step
    active_fraction: float = 1.0
    presence_every: float = 0.0  # seconds between presence updates per client (S4)
    grace: float = 3.0
    measure: str = "deliveries"
    """"acks": the step is judged on push->ack latency and the share of pushes acked
    (p99 <= ``slo_p99_ms``), not on deliveries to other clients."""
    slo_p99_ms: float = 100.0


@dataclass(frozen=True)
class Idle:
    name: str
    levels: list[int]
    hold: float
    room_size: int = 10


@dataclass(frozen=True)
class Catchup:
    name: str
    missed: list[int]
    cold: bool = True


@dataclass(frozen=True)
class Storm:
    name: str
    clients: int
    room_size: int = 10
    changes_during: int = 0


@dataclass
class Plan:
    loads: list[Load] = field(default_factory=list)
    idle: Idle | None = None
    catchup: Catchup | None = None
    storm: Storm | None = None


# S1 and S4 start below the 1/s with two extra steps (0.2, 0.5), so a system that
# already fails at 1/s (Accord did, when this was written) still gets a headline.
# S2: 500 clients in one room; 1 update/s per client is already 249,500
# deliveries/s, so the hot room's rates start far below S1's.
HOT_RATES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0]

# W1: durable writes. One client per room, so the only traffic back is each push's
# ack and its own change; judged on push->ack p99 <= 50 ms with >= 99.9 % acked.
WRITES = Load(
    "W1",
    "durable writes: 1,000 clients, one room each, push->ack",
    1000,
    1,
    [1, 2, 5, 10, 15, 20],
    10.0,
    measure="acks",
    slo_p99_ms=50.0,
)

FULL = Plan(
    loads=[
        Load(
            "S1",
            "small rooms: 100 rooms x 10 clients",
            1000,
            10,
            [0.2, 0.5, 1, 2, 5, 10, 15, 20],
            10.0,
        ),
        Load("S2", "hot room: 1 room x 500 clients", 500, 500, HOT_RATES, 10.0),
        Load(
            "S3",
            "mostly idle: 10,000 connections, 1% active",
            10000,
            10,
            [1, 2, 5, 10, 20],
            10.0,
            active_fraction=0.01,
        ),
        Load(
            "S4",
            "presence: S1 plus a presence update every 2 s per client",
            1000,
            10,
            [0.2, 0.5, 1, 2, 5, 10, 15, 20],
            10.0,
            presence_every=2.0,
        ),
        WRITES,
    ],
    idle=Idle("Idle", [1000, 5000, 10000, 19000], 120.0),
    catchup=Catchup("Catch-up", [10, 100, 1000, 10000]),
    storm=Storm("Storm", 1000),
)

SMOKE = Plan(
    loads=[
        Load("S1", "small rooms: 100 rooms x 10 clients", 1000, 10, [0.2, 1], 3.0, grace=2.0),
        Load("S2", "hot room: 1 room x 500 clients", 500, 500, [0.02, 0.1], 3.0, grace=2.0),
        Load(
            "W1",
            WRITES.title,
            1000,
            1,
            [1, 5],
            3.0,
            grace=2.0,
            measure="acks",
            slo_p99_ms=50.0,
        ),
    ],
)
