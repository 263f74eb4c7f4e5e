"""A sandbox's resource use, sampled every few seconds like E2B's ``/sandboxes/{id}/metrics``:
CPU and memory from its cgroups (v1 ``cpuacct`` and ``memory``), disk from its tmpfs."""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .isolation import Cgroups

SAMPLE_INTERVAL_S = 5.0
# One hour of samples per sandbox: a bounded history, the oldest dropped first.
HISTORY = 720


@dataclass(frozen=True)
class Sample:
    timestamp: float
    cpu_count: int
    cpu_used_pct: float
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int

    def to_json(self) -> dict[str, Any]:
        """E2B's ``SandboxMetric``."""
        return {
            "timestamp": datetime.fromtimestamp(self.timestamp, tz=UTC).isoformat().replace("+00:00", "Z"),
            "timestampUnix": int(self.timestamp),
            "cpuCount": self.cpu_count,
            "cpuUsedPct": self.cpu_used_pct,
            "memUsed": self.mem_used,
            "memTotal": self.mem_total,
            "memCache": self.mem_cache,
            "diskUsed": self.disk_used,
            "diskTotal": self.disk_total,
        }


class MetricsHistory:
    """The samples of one sandbox. ``disk_fds`` are descriptors of its tmpfs roots (home,
    workspace and /root; /tmp): statvfs through them never follows a sandbox's path."""

    def __init__(self, cgroups: Cgroups | None, cpus: float, memory_limit: int, disk_fds: list[int]) -> None:
        self.cgroups = cgroups
        self.cpu_count = max(1, math.ceil(cpus)) if cpus > 0 else os.cpu_count() or 1
        self.memory_limit = memory_limit
        self.disk_fds = disk_fds
        self.samples: deque[Sample] = deque(maxlen=HISTORY)
        self._last_cpu: tuple[float, int] | None = None

    def sample(self) -> Sample:
        now = time.time()
        sample = Sample(now, self.cpu_count, self._cpu_pct(now), *self._memory(), *self._disk())
        self.samples.append(sample)
        return sample

    def between(self, start: float | None, end: float | None) -> list[dict[str, Any]]:
        """Samples with ``start <= timestamp <= end`` (Unix seconds, whole)."""
        return [
            s.to_json()
            for s in self.samples
            if (start is None or s.timestamp >= start) and (end is None or int(s.timestamp) <= end)
        ]

    def _cpu_pct(self, now: float) -> float:
        used = self.cgroups.cpu_time_ns() if self.cgroups is not None else None
        if used is None:
            return 0.0
        last, self._last_cpu = self._last_cpu, (now, used)
        if last is None or now <= last[0]:
            return 0.0
        share = (used - last[1]) / ((now - last[0]) * 1e9 * self.cpu_count)
        return round(min(max(share, 0.0), 1.0) * 100, 2)

    def _memory(self) -> tuple[int, int, int]:
        stats = self.cgroups.memory_stats() if self.cgroups is not None else {}
        usage = stats.get("usage_in_bytes", 0)
        # Like `docker stats`: what the sandbox cannot give back (usage without reclaimable
        # page cache); tmpfs files count as used, as they do in a VM's RAM.
        used = max(usage - stats.get("total_inactive_file", 0), 0)
        total = min(stats.get("limit_in_bytes", self.memory_limit), self.memory_limit)
        return used, total, stats.get("total_cache", 0)

    def _disk(self) -> tuple[int, int]:
        used = total = 0
        for fd in self.disk_fds:
            try:
                st = os.fstatvfs(fd)
            except OSError:
                continue
            total += st.f_blocks * st.f_frsize
            used += (st.f_blocks - st.f_bfree) * st.f_frsize
        return used, total
