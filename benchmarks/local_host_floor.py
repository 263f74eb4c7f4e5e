"""`python -m benchmarks.local_host_floor`: what one call to the local E2B-compatible host costs.

Not a test: it prints a table and writes benchmarks/results/local-host-floor.json. Every request
goes to loopback only, and every loop is bounded in count.

Each case runs --repeat times, one call at a time, after one untimed warm-up, through the unmodified
E2B SDK (its own kept-alive connection pool) against a host started for the run:
  health          GET /health on one kept-alive connection, and on a fresh connection each time
                  (the fresh one is the baseline: a new connection never met the 40 ms delayed-ACK
                  wait that a kept-alive one did before the host set TCP_NODELAY)
  SDK             Sandbox.connect, is_running (envd /health), files.read, run_code("1+1")
  kernel          the same ipykernel driven by jupyter_client with no host: run_code's floor
With --stack, also a trivial execute through the local stack's API (the local gateway, the
functions, moto and a host of its own) beside run_code on the same sandbox, as `make bench` (a).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from e2b_code_interpreter import Sandbox

from benchmarks.bare_kernel import bench_kernel_alone
from benchmarks.run import RESULTS, ROOT, percentiles, timed
from local.e2b_host.testing import TEST_API_KEY, running_host


def measure(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    action()  # warm: the connection, the kernel, the host's code paths
    return percentiles(timed(action, repeat))


def bench_host(url: str, repeat: int) -> dict[str, dict[str, float]]:
    options = {"api_key": TEST_API_KEY, "api_url": url, "sandbox_url": url}
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(timeout=10) as kept_alive:

        def health_kept_alive() -> None:
            kept_alive.get(f"{url}/health").raise_for_status()

        results["health, kept-alive connection"] = measure(health_kept_alive, repeat)

    # "Connection: close": the server ends each connection, so every call opens a new one.
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as fresh:

        def health_fresh() -> None:
            fresh.get(f"{url}/health").raise_for_status()

        results["health, fresh connection"] = measure(health_fresh, repeat)

    sandbox = Sandbox.create(**options)
    try:
        sandbox.files.write("/home/user/bench.txt", "x" * 100)
        connect = lambda: Sandbox.connect(sandbox.sandbox_id, **options)  # noqa: E731
        results["SDK Sandbox.connect"] = measure(connect, repeat)
        results["SDK is_running (envd /health)"] = measure(sandbox.is_running, repeat)
        results["SDK files.read 100 B"] = measure(lambda: sandbox.files.read("/home/user/bench.txt"), repeat)

        def run_code() -> None:
            execution = sandbox.run_code("1+1")
            assert execution.text == "2", execution

        results["SDK run_code('1+1')"] = measure(run_code, repeat)
    finally:
        sandbox.kill()
    results["ipykernel alone, no host (baseline)"] = bench_kernel_alone(repeat)
    return results


def bench_stack(repeat: int) -> dict[str, Any]:
    from benchmarks.run import bench_execute_overhead  # noqa: PLC0415 - only with --stack
    from local.stack import running_stack  # noqa: PLC0415

    with running_stack(port=0, aws_port=0, concurrency=2) as stack:
        return bench_execute_overhead(stack, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--stack", action="store_true", help="also execute 1+1 through the local stack's API")
    parser.add_argument("--output", type=Path, default=RESULTS / "local-host-floor.json")
    args = parser.parse_args(argv)

    with running_host() as host:
        cases = bench_host(host.url, args.repeat)
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "repeat": args.repeat,
        "host": cases,
    }
    rows = [(name, r["p50_ms"], r["p95_ms"], f"n={r['n']}") for name, r in cases.items()]
    if args.stack:
        ex = report["stack_execute"] = bench_stack(args.repeat)
        rows += [
            ("stack: execute 1+1 via API", ex["api"]["p50_ms"], ex["api"]["p95_ms"], f"n={ex['api']['n']}"),
            (
                "stack: run_code 1+1 via SDK direct",
                ex["sdk_direct"]["p50_ms"],
                ex["sdk_direct"]["p95_ms"],
                f"API overhead p50 {ex['overhead_p50_ms']} ms, x{ex['ratio_p50']}",
            ),
        ]
    print(f"\n{'measurement':38} {'p50 ms':>9} {'p95 ms':>9}  notes")
    for name, p50, p95, note in rows:
        print(f"{name:38} {p50:>9} {p95:>9}  {note}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwritten to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
