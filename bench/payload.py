"""The ~100-byte update every client sends: a marker carrying its scheduled send time.

The marker is plain ASCII, so it survives every framing the harness speaks:
inside an Accord JSON ``push`` field, inside a Yjs update (Yjs writes strings
verbatim as UTF-8), and as the raw payload of the relay floor. A receiver finds
every marker in a frame with ``bytes.find`` — no JSON or Yjs decoding on the
hot path of the generator.

    @@ SS CCCCCCC NNNNNNNNNNNNNNNNNNN
       step client  scheduled send time (time.monotonic_ns, same clock in every process)
"""

from __future__ import annotations

MARK = b"@@"
STEP_DIGITS = 2
CLIENT_DIGITS = 7
NS_DIGITS = 19
MARKER_LEN = len(MARK) + STEP_DIGITS + CLIENT_DIGITS + NS_DIGITS  # 30
UPDATE_BYTES = 100


def marker(step: int, client: int, sched_ns: int) -> str:
    if not (
        0 <= step < 10**STEP_DIGITS
        and 0 <= client < 10**CLIENT_DIGITS
        and 0 <= sched_ns < 10**NS_DIGITS
    ):
        raise ValueError("marker field out of range")
    return f"@@{step:0{STEP_DIGITS}d}{client:0{CLIENT_DIGITS}d}{sched_ns:0{NS_DIGITS}d}"


def padded(step: int, client: int, sched_ns: int, size: int = 64) -> str:
    """The marker followed by filler, ``size`` characters in all."""
    text = marker(step, client, sched_ns)
    return text + "x" * max(0, size - len(text))


def find_markers(data: bytes) -> list[tuple[int, int, int]]:
    """Every (step, client, sched_ns) marker in ``data``, in order; malformed ones are skipped."""
    found: list[tuple[int, int, int]] = []
    pos = data.find(MARK)
    end = len(data)
    while pos >= 0:
        stop = pos + MARKER_LEN
        if stop > end:
            break
        field = data[pos + 2 : stop]
        if field.isdigit():
            found.append(
                (
                    int(field[:STEP_DIGITS]),
                    int(field[STEP_DIGITS : STEP_DIGITS + CLIENT_DIGITS]),
                    int(field[STEP_DIGITS + CLIENT_DIGITS :]),
                )
            )
            pos = data.find(MARK, stop)
        else:
            pos = data.find(MARK, pos + 1)
    return found
