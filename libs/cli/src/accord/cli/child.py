"""``python -m accord.cli.child PID accord.sync``: one service, as a child of ``accord dev``.

``accord dev`` starts its children in their own process group, so that Ctrl-C in a
terminal reaches only ``accord dev``, which then stops them in order (the edge first).
Outside that group nothing would stop a child whose parent died, so before the
service starts, this asks the kernel (Linux ``PR_SET_PDEATHSIG``) to send it SIGTERM
when its parent, process ``PID``, goes, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
SERVICES = ("accord.edge", "accord.sync", "accord.presence")


def stop_with_parent(parent: int) -> None:
    """SIGTERM this process when ``parent`` exits; exit now if it already has."""
    name = ctypes.util.find_library("c")
    if name is not None:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request: nobody would signal us
        sys.exit(1)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not argv[0].isdigit() or argv[1] not in SERVICES:
        print(f"usage: python -m accord.cli.child PID {{{','.join(SERVICES)}}}", file=sys.stderr)
        sys.exit(2)
    stop_with_parent(int(argv[0]))
    importlib.import_module(f"{argv[1]}.__main__").main([])


if __name__ == "__main__":
    main(sys.argv[1:])
