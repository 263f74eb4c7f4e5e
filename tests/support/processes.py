"""The host's processes, read from /proc, for tests that check what a sandbox left running."""

from __future__ import annotations

import os
from collections.abc import Iterator


def host_processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process this test can see."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                yield int(entry), fh.read().split(b"\0")
        except OSError:
            continue


def host_pids_with(marker: str) -> list[int]:
    """Pids of the processes whose command line contains `marker`."""
    wanted = marker.encode()
    return [pid for pid, argv in host_processes() if wanted in b"\0".join(argv)]
