"""`make bench`: what the service costs on top of its sandboxes, measured on the local stack.

Not a test: it prints a table and writes benchmarks/results/local-stack.json. Every request goes
to loopback only, and every loop is bounded in count and time.

  (a) a trivial execute through the API vs the same code through the E2B SDK on the same sandbox
  (b) session create through the API vs a bare sandbox create
  (c) N concurrent sessions executing for a fixed time: throughput, errors, p50, p95 and p95/p50
  (d) cold import time of each function module in a fresh interpreter
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from e2b_code_interpreter import Sandbox

from local.stack import Stack, running_stack, tenant_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEED_BODY = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5), 2), "p95_ms": round(pick(0.95), 2)}


def timed(action: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def sdk_options(stack: Stack) -> dict[str, str]:
    assert stack.e2b_url is not None
    return {"api_key": "bench", "api_url": stack.e2b_url, "sandbox_url": stack.e2b_url}


def api_session(stack: Stack) -> requests.Session:
    """HTTP with the stack's dev key, as every caller of the API sends one."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {stack.api_key}"
    return http


def create_session(http: requests.Session, url: str, environment: str = "e2b-python") -> str:
    body = SEED_BODY | {"environment": environment, "provider": environment.split("-", maxsplit=1)[0]}
    response = http.post(f"{url}/api/sessions", json=body, timeout=120)
    response.raise_for_status()
    return str(response.json()["session_id"])


def bench_execute_overhead(stack: Stack, repeat: int) -> dict[str, Any]:
    http = api_session(stack)
    session_id = create_session(http, stack.url)
    body = {"session_id": session_id, "code": "1 + 1", "language": "python"}

    def through_api() -> None:
        response = http.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60)
        assert response.status_code == 200 and response.json()["results"][0]["text"] == "2", response.text

    through_api()  # warm the worker process and the connection
    api = percentiles(timed(through_api, repeat))

    (info,) = [
        s
        for s in Sandbox.list(**sdk_options(stack)).next_items()
        if s.metadata.get("session_id") == session_id
    ]
    sandbox = Sandbox.connect(info.sandbox_id, **sdk_options(stack))
    sandbox.run_code("1 + 1")
    sdk = percentiles(timed(lambda: sandbox.run_code("1 + 1"), repeat))
    http.delete(f"{stack.url}/api/sessions/{session_id}", timeout=60)
    return {
        "api": api,
        "sdk_direct": sdk,
        "overhead_p50_ms": round(api["p50_ms"] - sdk["p50_ms"], 2),
        "ratio_p50": round(api["p50_ms"] / sdk["p50_ms"], 2),
    }


def bench_create(stack: Stack, repeat: int) -> dict[str, Any]:
    http = api_session(stack)
    created: list[str] = []
    api = percentiles(timed(lambda: created.append(create_session(http, stack.url)), repeat))
    for session_id in created:
        http.delete(f"{stack.url}/api/sessions/{session_id}", timeout=60)

    sandboxes: list[Sandbox] = []
    bare = percentiles(timed(lambda: sandboxes.append(Sandbox.create(**sdk_options(stack))), repeat))
    for sandbox in sandboxes:
        sandbox.kill()
    return {
        "api": api,
        "sandbox_create_alone": bare,
        "overhead_p50_ms": round(api["p50_ms"] - bare["p50_ms"], 2),
    }


def bench_concurrency(
    stack: Stack, sessions: int, seconds: float, environment: str = "e2b-python"
) -> dict[str, Any]:
    http = api_session(stack)
    with ThreadPoolExecutor(sessions) as pool:
        session_ids = list(
            pool.map(lambda _: create_session(api_session(stack), stack.url, environment), range(sessions))
        )
        # One untimed round: every worker process of the execute function is started and warm,
        # as provisioned concurrency would have it; cold starts are measured in (d).
        list(pool.map(lambda sid: http_warm(stack, sid), session_ids))
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def worker(session_id: str) -> None:
        client = api_session(stack)
        count = 0
        while time.monotonic() < deadline:
            count += 1
            body = {"session_id": session_id, "code": f"n = {count}\nn * 2", "language": "python"}
            started = time.perf_counter()
            response = client.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if response.status_code == 200 and response.json()["results"][0]["text"] == str(count * 2):
                    latencies.append(elapsed)
                else:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(worker, session_ids))
    elapsed = time.monotonic() - started
    for session_id in session_ids:
        http.delete(f"{stack.url}/api/sessions/{session_id}", timeout=60)
    figures = percentiles(latencies or [0.0])
    return {
        "sessions": sessions,
        "seconds": round(elapsed, 2),
        "executions": len(latencies),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        **figures,
        # The target: p95 within 3x p50, i.e. no request queues far behind the others.
        "ratio_p95_p50": round(figures["p95_ms"] / figures["p50_ms"], 2) if figures["p50_ms"] else None,
    }


def bench_docker(stack: Stack, repeat: int, create_repeat: int) -> dict[str, Any]:
    """Docker provider: create (container + kernel ready) and a trivial execute, through the API;
    and where create's time goes: a bare container start next to the whole create."""
    import docker  # noqa: PLC0415 - only when the Docker provider is benchmarked

    http = api_session(stack)
    created: list[str] = []
    create = percentiles(
        timed(lambda: created.append(create_session(http, stack.url, "docker-python")), create_repeat)
    )
    body = {"session_id": created[0], "code": "1 + 1", "language": "python"}
    http.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60).raise_for_status()
    execute = percentiles(
        timed(
            lambda: http.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60).raise_for_status(),
            repeat,
        )
    )
    for session_id in created:
        http.delete(f"{stack.url}/api/sessions/{session_id}", timeout=60)

    client = docker.from_env()

    def bare_container() -> None:
        container = client.containers.run(
            "sandbox-gateway/sandbox:latest", ["true"], detach=True, network_mode="none", init=True
        )
        container.wait()
        container.remove(force=True)

    bare = percentiles(timed(bare_container, create_repeat))
    return {"create_api": create, "execute_api": execute, "bare_container_run": bare}


def http_warm(stack: Stack, session_id: str) -> None:
    body = {"session_id": session_id, "code": "0", "language": "python"}
    api_session(stack).post(f"{stack.url}/api/e2b/execute", json=body, timeout=120).raise_for_status()


def bench_cold_imports(repeat: int) -> dict[str, Any]:
    results = {}
    for function in ("sessions", "execute", "files"):
        code = (
            "import sys, time; sys.path[:0] = ['layers/shared', 'functions/" + function + "'];"
            "t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"
        )
        samples = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(repeat)
        ]
        results[function] = {
            "n": repeat,
            "median_ms": round(statistics.median(samples), 1),
            "max_ms": round(max(samples), 1),
        }
    return results


def print_table(report: dict[str, Any]) -> None:
    ex, cr, cc = report["execute_overhead"], report["create"], report["concurrency"]
    rows = [
        ("execute 1+1 via API", ex["api"]["p50_ms"], ex["api"]["p95_ms"], f"n={ex['api']['n']}"),
        (
            "execute 1+1 via SDK direct",
            ex["sdk_direct"]["p50_ms"],
            ex["sdk_direct"]["p95_ms"],
            f"overhead p50 {ex['overhead_p50_ms']} ms, x{ex['ratio_p50']}",
        ),
        ("create session via API", cr["api"]["p50_ms"], cr["api"]["p95_ms"], f"n={cr['api']['n']}"),
        (
            "create sandbox alone (SDK)",
            cr["sandbox_create_alone"]["p50_ms"],
            cr["sandbox_create_alone"]["p95_ms"],
            f"overhead p50 {cr['overhead_p50_ms']} ms",
        ),
        (
            f"{cc['sessions']} sessions x {cc['seconds']} s",
            cc["p50_ms"],
            cc["p95_ms"],
            f"{cc['throughput_per_s']} exec/s, {cc['executions']} ok, errors {cc['errors'] or 0}, "
            f"p95/p50 x{cc['ratio_p95_p50']}",
        ),
    ]
    if "docker" in report:
        dk, dc = report["docker"], report["docker_concurrency"]
        rows += [
            (
                "docker: create session via API",
                dk["create_api"]["p50_ms"],
                dk["create_api"]["p95_ms"],
                f"n={dk['create_api']['n']}",
            ),
            (
                "docker: bare container run+rm",
                dk["bare_container_run"]["p50_ms"],
                dk["bare_container_run"]["p95_ms"],
                "engine cost alone",
            ),
            (
                "docker: execute 1+1 via API",
                dk["execute_api"]["p50_ms"],
                dk["execute_api"]["p95_ms"],
                f"n={dk['execute_api']['n']}",
            ),
            (
                f"docker: {dc['sessions']} sessions x {dc['seconds']} s",
                dc["p50_ms"],
                dc["p95_ms"],
                f"{dc['throughput_per_s']} exec/s, {dc['executions']} ok, errors {dc['errors'] or 0}, "
                f"p95/p50 x{dc['ratio_p95_p50']}",
            ),
        ]
    rows += [
        (f"cold import functions/{name}", r["median_ms"], r["max_ms"], "median / max")
        for name, r in report["cold_import"].items()
    ]
    print(f"\n{'measurement':38} {'p50 ms':>9} {'p95 ms':>9}  notes")
    for name, p50, p95, note in rows:
        print(f"{name:38} {p50:>9} {p95:>9}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--create-repeat", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "local-stack.json")
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker provider's figures")
    args = parser.parse_args(argv)

    with running_stack(port=0, aws_port=0, concurrency=args.sessions) as stack:
        # --sessions live at once: over the template's default live-session quota (10) otherwise.
        tenant_store(stack.dynamodb_url).set_quota_overrides(
            stack.tenant_id, {"max_active_sessions": max(args.sessions, 10)}
        )
        report = {
            "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
            "execute_overhead": bench_execute_overhead(stack, args.repeat),
            "create": bench_create(stack, args.create_repeat),
            "concurrency": bench_concurrency(stack, args.sessions, args.seconds),
        }
        if not args.no_docker:
            report["docker"] = bench_docker(stack, args.repeat, args.create_repeat)
            report["docker_concurrency"] = bench_concurrency(
                stack, args.sessions, args.seconds, "docker-python"
            )
    report["cold_import"] = bench_cold_imports(5)
    print_table(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
