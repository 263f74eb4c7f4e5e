"""`make bench-timeouts`: how soon after `timeout_seconds` a runaway cell is answered, per provider.

Not a test: it prints a table and writes benchmarks/results/timeouts.json. The baseline is the
limit itself: a perfect provider answers at exactly `timeout_seconds`, so `overshoot` is what
stopping the code costs, and `next_ms` how soon the session runs its next cell. Each case runs
REPEAT times in one sandbox per provider, through the service's own adapters (E2B: the real SDK
against the local E2B-compatible host; Docker: a real engine, when one is reachable).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sandbox_gateway.adapters.e2b import E2BSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Environment, Language
from sandbox_gateway.models.execution import CodeRun
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec

from local.e2b_host.testing import running_host

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

CASES = {
    "sleep": "import time\ntime.sleep(60)",
    "ignores SIGINT": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
    "prints every 0.5 s": "import time\nfor i in range(1000):\n    print(i, flush=True); time.sleep(0.5)",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
}


def _environment(name: str) -> Environment:
    return next(env for env in BUILT_IN_ENVIRONMENTS if env.name == name)


@contextmanager
def e2b_provider() -> Iterator[tuple[SandboxProvider, Environment]]:
    with running_host() as host:
        provider = E2BSandboxProvider(
            lambda: host.env["E2B_API_KEY"],
            request_timeout_seconds=10,
            api_url=host.url,
            sandbox_url=host.url,
        )
        yield provider, _environment("e2b-python")


@contextmanager
def docker_provider() -> Iterator[tuple[SandboxProvider, Environment]]:
    from sandbox_gateway.adapters.docker import DockerSandboxProvider  # noqa: PLC0415 - optional

    yield DockerSandboxProvider(Settings()), _environment("docker-python")


def measure(provider: SandboxProvider, env: Environment, limit: int, repeat: int) -> list[dict[str, Any]]:
    sandbox_id = provider.create(SandboxSpec("ses_bench_timeouts", "bench", env, 900)).sandbox_id
    ref = SandboxRef(sandbox_id, "ses_bench_timeouts", env, int(time.time()) + 900)
    rows = []
    try:
        for case, code in CASES.items():
            answered, following = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                run = CodeRun(code=code, language=Language.PYTHON, timeout_seconds=limit)
                outcome = provider.execute(ref, run)
                answered.append(time.perf_counter() - started)
                started = time.perf_counter()
                provider.execute(ref, CodeRun(code="1", language=Language.PYTHON, timeout_seconds=10))
                following.append((time.perf_counter() - started) * 1000)
            median = statistics.median(answered)
            rows.append(
                {
                    "case": case,
                    "status": outcome.status.value,
                    "limit_s": limit,
                    "answered_s": round(median, 2),
                    "max_s": round(max(answered), 2),
                    "overshoot_s": round(median - limit, 2),
                    "ratio": round(median / limit, 2),
                    "next_ms": round(statistics.median(following), 1),
                }
            )
    finally:
        provider.kill(sandbox_id)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=3, help="timeout_seconds of every case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--providers", default="e2b,docker")
    args = parser.parse_args()

    results: dict[str, Any] = {"limit_s": args.limit, "repeat": args.repeat, "providers": {}}
    factories = {"e2b": e2b_provider, "docker": docker_provider}
    for name in args.providers.split(","):
        try:
            with factories[name]() as (provider, env):
                results["providers"][name] = measure(provider, env, args.limit, args.repeat)
        except Exception as exc:  # e.g. no Docker engine: say so, measure the rest
            results["providers"][name] = f"not measured: {type(exc).__name__}: {exc}"

    header = ("provider", "case", "status", "limit", "answered", "max", "ratio", "next")
    print("{:8} {:20} {:8} {:>6} {:>9} {:>6} {:>6} {:>8}".format(*header))
    for name, rows in results["providers"].items():
        if isinstance(rows, str):
            print(f"{name:8} {rows}")
            continue
        for row in rows:
            print(
                f"{name:8} {row['case']:20} {row['status']:8} {row['limit_s']:>5}s {row['answered_s']:>8}s "
                f"{row['max_s']:>5}s {row['ratio']:>5}x {row['next_ms']:>6}ms"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    with suppress(OSError):
        (RESULTS / "timeouts.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'timeouts.json'}")


if __name__ == "__main__":
    main()
