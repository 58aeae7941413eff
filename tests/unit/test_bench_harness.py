"""Unit tests of the bench harness's pure parts: statistics, schedule, markers, report."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from bench import report
from bench.payload import MARKER_LEN, find_markers, marker, padded
from bench.protocols import varuint
from bench.schedule import active_clients, rising_steps, send_count, send_offsets, split_clients
from bench.stats import Histogram, generator_verdict, headline, meets_slo, spread


def test_histogram_percentiles_are_within_one_percent() -> None:
    rng = random.Random(7)
    values = [rng.uniform(100, 200_000) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.add(v)
    values.sort()
    for p in (50, 95, 99, 99.9):
        exact = values[max(0, int(p / 100 * len(values) + 0.999999) - 1)]
        got = h.percentile(p)
        assert got is not None
        assert exact * 0.99 <= got <= exact * 1.02, (p, exact, got)
    assert h.total == 20_000
    assert Histogram().percentile(99) is None


def test_histograms_merge_and_round_trip_through_json() -> None:
    a, b = Histogram(), Histogram()
    for v in range(1, 1001):
        a.add(v)
        b.add(v * 10)
    merged = Histogram().merge(a).merge(b)
    again = Histogram.from_json(json.loads(json.dumps(merged.to_json())))
    assert again.total == 2000
    assert again.max_us == 10_000
    assert again.percentile(50) == merged.percentile(50)
    assert again.percentile(100) == pytest.approx(10_000)


def test_headline_takes_the_best_valid_step_meeting_the_slo() -> None:
    steps = [
        {"rate": 1, "delivered_per_s": 1000, "p99_ms": 5, "completeness": 1.0, "valid": True},
        {"rate": 2, "delivered_per_s": 2000, "p99_ms": 50, "completeness": 0.9995, "valid": True},
        {"rate": 5, "delivered_per_s": 5000, "p99_ms": 150, "completeness": 1.0, "valid": True},
        {"rate": 10, "delivered_per_s": 9000, "p99_ms": 20, "completeness": 1.0, "valid": False},
    ]
    h = headline(steps)
    assert h["deliveries_per_s"] == 2000 and h["at_rate"] == 2
    assert not h["limited_by_generator"]


def test_headline_flags_a_generator_limited_run_and_never_counts_invalid_steps() -> None:
    steps = [
        {"rate": 1, "delivered_per_s": 1000, "p99_ms": 5, "completeness": 1.0, "valid": True},
        {"rate": 2, "delivered_per_s": 2000, "p99_ms": 5, "completeness": 1.0, "valid": False},
    ]
    h = headline(steps)
    assert h["deliveries_per_s"] == 1000
    assert h["limited_by_generator"]
    assert headline([])["deliveries_per_s"] is None


def test_slo_needs_both_latency_and_completeness() -> None:
    assert meets_slo({"p99_ms": 100.0, "completeness": 0.999})
    assert not meets_slo({"p99_ms": 100.1, "completeness": 1.0})
    assert not meets_slo({"p99_ms": 1.0, "completeness": 0.998})
    assert not meets_slo({"p99_ms": None, "completeness": 1.0})


def test_generator_verdict() -> None:
    assert generator_verdict(1.0, 0.5) == []
    assert len(generator_verdict(6.0, 0.5)) == 1
    assert len(generator_verdict(1.0, 0.81)) == 1
    assert len(generator_verdict(None, 0.9)) == 1


def test_spread_is_median_and_range() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([None])["median"] is None


def test_open_loop_schedule_is_even_and_bounded() -> None:
    offsets = list(send_offsets(10, 2.0, 3.0))
    assert len(offsets) == send_count(10, 2.0, 3.0) == 60
    times = [t for t, _ in offsets]
    assert times == sorted(times) and times[0] == 0 and times[-1] < 3.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.05}
    per_client = [sum(1 for _, c in offsets if c == i) for i in range(10)]
    assert per_client == [6] * 10
    assert list(send_offsets(0, 1.0, 1.0)) == []


def test_steps_split_and_active_clients() -> None:
    steps = rising_steps([1, 2, 5], 10)
    assert [(s.index, s.rate) for s in steps] == [(0, 1.0), (1, 2.0), (2, 5.0)]
    with pytest.raises(ValueError):
        rising_steps([2, 1], 10)
    ranges = split_clients(10, 3)
    assert [len(r) for r in ranges] == [4, 3, 3] and ranges[0].start == 0 and ranges[-1].stop == 10
    assert split_clients(1, 4) == [range(0, 1)]
    act = active_clients(10_000, 0.01)
    assert len(act) == 100 and act[0] == 0 and len(set(act)) == 100


def test_markers_are_found_in_any_framing() -> None:
    m = marker(3, 42, 123_456_789)
    assert len(m) == MARKER_LEN and len(padded(3, 42, 1, 100)) == 100
    json_frame = json.dumps(
        {
            "changes": [
                {"patch": {"set": {"p": padded(1, 7, 99)}}},
                {"patch": {"set": {"p": padded(1, 8, 100)}}},
            ]
        }
    ).encode()
    assert find_markers(json_frame) == [(1, 7, 99), (1, 8, 100)]
    yjs_like = b"\x00\x02\x51\x01\x77" + marker(0, 1, 5).encode() + b"@@x@@" + b"\x00"
    assert find_markers(yjs_like) == [(0, 1, 5)]
    assert find_markers(b"@@12") == []
    with pytest.raises(ValueError):
        marker(100, 0, 0)


def test_varuint_matches_lib0() -> None:
    assert varuint(0) == b"\x00"
    assert varuint(127) == b"\x7f"
    assert varuint(128) == b"\x80\x01"
    assert varuint(300) == b"\xac\x02"


def _load_rec(
    system: str, rate: float, delivered: float, p99: float, valid: bool = True
) -> dict[str, object]:
    return {
        "kind": "load",
        "scenario": "S1",
        "title": "t",
        "system": system,
        "rep": 0,
        "rate": rate,
        "offered_msgs_per_s": 10.0,
        "delivered_per_s": delivered,
        "completeness": 1.0,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "p99_ms": p99,
        "p999_ms": 4.0,
        "echo": {"count": 1},
        "server_cpu": 0.5,
        "cpu_us_per_delivery": 10.0,
        "server_cpu_split": {"edge": 0.3, "sync": 0.2},
        "gen_lag_p99_ms": 0.5,
        "gen_cpu": [0.2],
        "valid": valid,
        "invalid_reasons": [] if valid else ["x"],
    }


def test_report_renders_results_and_edits_only_its_section(tmp_path: Path) -> None:
    import matplotlib  # noqa: F401  (requirements-dev.txt)

    recs = [
        {
            "kind": "meta",
            "mode": "smoke",
            "systems": ["a"],
            "reps": 1,
            "machine": {"cpus": 2},
            "command": "c",
        },
        _load_rec("a", 1, 100, 3),
        _load_rec("a", 2, 200, 300),
        _load_rec("b", 1, 90, 2, valid=False),
        {
            "kind": "headline",
            "scenario": "S1",
            "system": "a",
            "rep": 0,
            "deliveries_per_s": 100,
            "at_rate": 1,
            "limited_by_generator": False,
        },
        {
            "kind": "idle",
            "system": "a",
            "connections": 1000,
            "connected": 1000,
            "connects_per_s": 500,
            "pss_per_conn_bytes": 20480,
            "idle_cpu": 0.01,
            "idle_cpu_split": {"edge": 0.01},
        },
        {"kind": "catchup", "system": "a", "missed": 10, "warm_ms": 5.0, "cold_ms": 9.0},
    ]
    results = tmp_path / "results-smoke.jsonl"
    results.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\n## Sync engine\n\nkeep me\n\n"
        "## Whole stack\n\nintro\n\n## Later\n\nkeep too\n"
    )
    md = report.summary(report.load(results), tmp_path, "smoke")
    assert "| a | 100 |" in md and "S1" in md and "Idle" in md and "Catch-up" in md
    assert (tmp_path / "smoke-s1-latency.png").stat().st_size > 1000
    report.update_doc(md, doc, "smoke")
    report.update_doc(md + "\nsecond", doc, "smoke")
    report.update_doc("the full run", doc, "full")
    text = doc.read_text()
    begin, _ = report.markers("smoke")
    assert text.count(begin) == 1 and "second" in text and "the full run" in text
    assert "keep me" in text and "keep too" in text and "intro" in text
    assert text.index("## Whole stack") < text.index(begin) < text.index("## Later")
    assert text.index("the full run") < text.index("## Later")


def test_a_report_written_elsewhere_leaves_docs_benchmarks_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib  # noqa: F401  (requirements-dev.txt)

    edited: list[str] = []
    monkeypatch.setattr(report, "update_doc", lambda md, doc=None, tag="": edited.append(tag))
    results = tmp_path / "results-smoke.jsonl"
    results.write_text(json.dumps(_load_rec("a", 1, 100, 3)) + "\n")
    assert report.render(results, tmp_path, "smoke").exists()
    assert edited == []  # only a run written to docs/bench updates its block
    monkeypatch.setattr(report, "DOC_OUT", tmp_path)
    report.render(results, tmp_path, "smoke")
    report.render(results, tmp_path, "smoke", update=False)
    assert edited == ["smoke"]


def test_an_accord_push_carries_its_schedule_as_id_and_the_ack_returns_it() -> None:
    from bench.protocols import Accord

    proto = Accord("ws://x/ws", "room-1", 7, "run")
    push = json.loads(proto.update(3, 123_456_789_012))
    assert push["id"] == 123_456_789_012 and push["changes"][0]["client_seq"] == 1
    ack = json.dumps(
        {"type": "ack", "room": "room-1", "results": [{"client_seq": 1, "seq": 9}], "id": 42},
        separators=(",", ":"),
    ).encode()
    assert Accord.acked_ns(ack) == 42
    assert Accord.acked_ns(b'{"type":"changes","room":"r","changes":[]}') is None
    assert Accord.acked_ns(b'{"type":"ack","room":"r","results":[]}') is None


def test_an_ack_scenario_is_judged_on_its_own_latency_limit() -> None:
    step = {"p99_ms": 70.0, "completeness": 1.0}
    assert meets_slo(step)
    assert not meets_slo({**step, "slo_p99_ms": 50.0})
    assert meets_slo({**step, "p99_ms": 49.0, "slo_p99_ms": 50.0})


def test_sync_rpc_pushes_rotate_rooms_with_rising_client_seqs() -> None:
    from bench.sync_rpc import ROOMS, Pushes

    pushes = Pushes()
    first = pushes.call(3)
    assert [p.room for p in first.pushes] == ["r0", "r1", "r2"]
    assert all(len(p.changes) == 1 and p.changes[0].client_seq == 1 for p in first.pushes)
    pushes.call(ROOMS - 3)
    again = pushes.call(1).pushes[0]
    assert (again.room, again.client_id, again.changes[0].client_seq) == ("r0", "c0", 2)


def test_alternate_reads_the_cpu_lines_of_bench_profile() -> None:
    from bench.alternate import parse_cores

    output = (
        "{'connected': 1000, 'failed': 0}\n"
        "edge         user 0.164  system 0.067  cores\n"
        "sync         user 0.253  system 0.033  cores\n"
        "{'sent': 6000, 'frames': 55432}\n"
    )
    assert parse_cores(output) == pytest.approx({"edge": 0.231, "sync": 0.286})
    assert parse_cores("no cpu lines") == {}


def test_wakeups_writes_a_websocket_text_frame_and_divides_by_messages() -> None:
    from bench import wakeups

    first, marker_len = wakeups.FRAME[0], wakeups.FRAME[1]
    assert (first, marker_len) == (0x81, 126)  # FIN, text; a 16-bit length follows
    assert int.from_bytes(wakeups.FRAME[2:4], "big") == len(wakeups.FRAME) - 4 == 150
    assert wakeups.per_message_us(0.003, 1000) == pytest.approx(3.0)
    assert wakeups.per_message_us(1.0, 0) == 0.0
