"""`make bench`: what the service costs on top of its sandboxes, measured on the local stack.

Not a test: one run prints one table, each figure beside its baseline measured in the same run and
their ratio, and writes benchmarks/results/local-stack.json (with the machine it ran on) and a
chart of the latencies, local-stack.png, next to it. Every request goes to loopback only, and every
loop is bounded in count and time.

  execute      `1+1` through the API vs run_code on the same sandbox through the E2B SDK;
               docker-python through the API vs e2b-python through the API (when Docker is up);
               SDK run_code vs the same ipykernel driven alone (benchmarks/bare_kernel.py)
  create       session create through the API vs a bare sandbox create (Sandbox.create; for
               Docker a bare container run); pooled creates when the stack reports a warm pool
  concurrency  N sessions executing at once for a fixed time: p95 vs p50, errors, throughput
  round trips  DynamoDB calls and E2B control-plane / sandbox requests per request, counted in the
               gateway's own worker processes (benchmarks/round_trips.py)
  cold import  each function's import time, median of N fresh interpreters, vs the same function
               at --import-baseline (benchmarks/cold_imports.py)

A case that cannot run (no Docker, no warm pool, a create the stack refused) is a row that says
n/a and why; the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from e2b_code_interpreter import Sandbox
from sandbox_gateway.models.environment import DOCKER_SANDBOX_IMAGE

from benchmarks import cold_imports
from benchmarks.bare_kernel import bench_kernel_alone
from benchmarks.report import format_table, machine, percentiles, rows, write_chart, write_json
from benchmarks.round_trips import count_round_trips
from local.stack import Stack, running_stack, tenant_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEED_BODY = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}
# main just before issue 11's work began: the cold-import baseline, so the table reads before/after.
ISSUE_11_BASELINE = "4180450"

__all__ = ["RESULTS", "ROOT", "api_session", "create_session", "percentiles", "timed"]


class Refused(RuntimeError):
    """The stack answered a request the benchmark needs with an error."""


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
    if response.status_code >= 300:
        raise Refused(
            f"POST /api/sessions ({environment}) answered {response.status_code}: {response.text[:200]}"
        )
    return str(response.json()["session_id"])


def delete_sessions(stack: Stack, session_ids: list[str]) -> None:
    http = api_session(stack)
    for session_id in session_ids:
        http.delete(f"{stack.url}/api/sessions/{session_id}", timeout=60)


def bench_execute_overhead(stack: Stack, repeat: int) -> dict[str, Any]:
    http = api_session(stack)
    session_id = create_session(http, stack.url)
    body = {"session_id": session_id, "code": "1 + 1", "language": "python"}

    def through_api() -> None:
        response = http.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60)
        assert response.status_code == 200 and response.json()["results"][0]["text"] == "2", response.text

    try:
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
    finally:
        delete_sessions(stack, [session_id])
    return {
        "api": api,
        "sdk_direct": sdk,
        "kernel_alone": bench_kernel_alone(repeat),
        "overhead_p50_ms": round(api["p50_ms"] - sdk["p50_ms"], 2),
        "ratio_p50": round(api["p50_ms"] / sdk["p50_ms"], 2),
    }


def bench_create(stack: Stack, repeat: int) -> dict[str, Any]:
    http = api_session(stack)
    created: list[str] = []
    try:
        api = percentiles(timed(lambda: created.append(create_session(http, stack.url)), repeat))
    finally:
        delete_sessions(stack, created)
    sandboxes: list[Sandbox] = []
    try:
        bare = percentiles(timed(lambda: sandboxes.append(Sandbox.create(**sdk_options(stack))), repeat))
    finally:
        for sandbox in sandboxes:
            sandbox.kill()
    return {
        "api": api,
        "sandbox_create_alone": bare,
        "overhead_p50_ms": round(api["p50_ms"] - bare["p50_ms"], 2),
    }


def warm_pool_sizes(stack: Stack) -> dict[str, int]:
    """The warm pool the stack reports, per environment: `Stack.warm_pool` ({environment: size}).
    No pool, no pooled figures."""
    sizes = stack.warm_pool
    return {environment: int(size) for environment, size in dict(sizes).items() if int(size) > 0}


def bench_create_pooled(stack: Stack, repeat: int, environments: set[str]) -> dict[str, Any]:
    """Creates served by the warm pool: at most its size, one after the other, from the pool the
    stack filled before the run (so before the unpooled creates drain it)."""
    sizes = warm_pool_sizes(stack)
    if not sizes:
        return {"error": "no warm pool configured"}
    http = api_session(stack)
    # The sessions function's first worker (and the authorizer's) start on a request that creates
    # nothing: the pooled creates measure the claim, not a process start.
    http.get(f"{stack.url}/api/sessions", timeout=60).raise_for_status()
    figures: dict[str, Any] = {}
    for environment, size in sizes.items():
        if environment not in environments:
            figures[environment] = {"error": f"{environment} is not benchmarked in this run"}
            continue
        created: list[str] = []
        create = lambda env=environment, into=created: into.append(create_session(http, stack.url, env))  # noqa: E731
        try:
            samples = timed(create, min(repeat, size))
        finally:
            delete_sessions(stack, created)
        figures[environment] = percentiles(samples) | {"pool_size": size}
    return {"environments": figures}


def warm_ramp(sessions: int) -> list[int]:
    """How many warm-up executes run at once, round after round: doubling, so that no round starts
    more than half of the execute function's workers at the same time (20 cold imports at once on a
    small machine pass the function's timeout, and the gateway answers 503)."""
    widths, width = [], 1
    while width < sessions:
        widths.append(width)
        width *= 2
    return [*widths, sessions]


def bench_concurrency(
    stack: Stack, sessions: int, seconds: float, environment: str = "e2b-python"
) -> dict[str, Any]:
    """`sessions` sessions executing at once for `seconds`: latency p50 and p95, throughput, errors.

    The sessions are created one after the other, and the execute function's workers warmed in a
    ramp: this case measures executes, and N creates at once are N cold workers and N kernels
    starting together, which on a loaded 2-core machine passed the create's 29 s timeout (503)."""
    http = api_session(stack)
    session_ids: list[str] = []
    try:
        for number in range(sessions):
            try:
                session_ids.append(create_session(http, stack.url, environment))
            except Refused as exc:
                raise Refused(f"session {number + 1} of {sessions}: {exc}") from None
        # Untimed: every worker process of the execute function started and warm, as provisioned
        # concurrency would have it; cold starts are measured in the cold-import case.
        for width in warm_ramp(sessions):
            with ThreadPoolExecutor(width) as pool:
                list(pool.map(lambda sid: http_warm(stack, sid), session_ids[:width]))
        return _execute_for(stack, session_ids, seconds)
    finally:
        delete_sessions(stack, session_ids)


def _execute_for(stack: Stack, session_ids: list[str], seconds: float) -> dict[str, Any]:
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
            try:
                response = client.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60)
                ok = response.status_code == 200 and response.json()["results"][0]["text"] == str(count * 2)
                outcome = str(response.status_code)
            except requests.RequestException as exc:  # counted, as a caller would see it
                ok, outcome = False, type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[outcome] = errors.get(outcome, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(len(session_ids)) as pool:
        list(pool.map(worker, session_ids))
    elapsed = time.monotonic() - started
    if not latencies:
        raise Refused(f"no execute succeeded in {elapsed:.1f} s: errors {errors}")
    figures = percentiles(latencies)
    return {
        "sessions": len(session_ids),
        "seconds": round(elapsed, 2),
        "executions": len(latencies),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        **figures,
        # The target: p95 within 3x p50, i.e. no request queues far behind the others.
        "ratio_p95_p50": round(figures["p95_ms"] / figures["p50_ms"], 2),
    }


def docker_unavailable() -> str | None:
    """Why the Docker provider cannot be benchmarked here, or None when it can."""
    try:
        import docker  # noqa: PLC0415 - only when the Docker provider is benchmarked
    except ImportError:
        return "docker-py is not installed"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no Docker engine ({type(exc).__name__}); `make docker` starts one"
    try:
        client.images.get(DOCKER_SANDBOX_IMAGE)
    except docker.errors.ImageNotFound:
        return f"no {DOCKER_SANDBOX_IMAGE} image; `make docker` builds it"
    except Exception as exc:
        return f"Docker engine error ({type(exc).__name__}: {exc})"
    return None


def bench_docker(stack: Stack, repeat: int, create_repeat: int) -> dict[str, Any]:
    """Docker provider: create (container + kernel ready) and a trivial execute, through the API;
    and where create's time goes: a bare container start next to the whole create."""
    import docker  # noqa: PLC0415 - only when the Docker provider is benchmarked

    http = api_session(stack)
    created: list[str] = []
    try:
        create = percentiles(
            timed(lambda: created.append(create_session(http, stack.url, "docker-python")), create_repeat)
        )
        body = {"session_id": created[0], "code": "1 + 1", "language": "python"}

        def execute() -> None:
            response = http.post(f"{stack.url}/api/e2b/execute", json=body, timeout=60)
            assert response.status_code == 200 and response.json()["results"][0]["text"] == "2", response.text

        execute()
        executed = percentiles(timed(execute, repeat))
    finally:
        delete_sessions(stack, created)

    client = docker.from_env()

    def bare_container() -> None:
        container = client.containers.run(
            DOCKER_SANDBOX_IMAGE, ["true"], detach=True, network_mode="none", init=True
        )
        container.wait()
        container.remove(force=True)

    bare = percentiles(timed(bare_container, create_repeat))
    return {"create_api": create, "execute_api": executed, "bare_container_run": bare}


def http_warm(stack: Stack, session_id: str) -> None:
    body = {"session_id": session_id, "code": "0", "language": "python"}
    response = api_session(stack).post(f"{stack.url}/api/e2b/execute", json=body, timeout=120)
    if response.status_code != 200:
        raise Refused(f"warm-up execute answered {response.status_code}: {response.text[:200]}")


def bench_cold_imports(repeat: int, baseline: str | None) -> dict[str, Any]:
    """benchmarks/cold_imports.py's measurement: this tree, and `baseline`'s when given."""
    baseline_error = None
    with tempfile.TemporaryDirectory(prefix="cold-imports-") as scratch:
        trees = {"after": ROOT}
        if baseline:
            try:
                trees = {"before": cold_imports.export(baseline, Path(scratch)), "after": ROOT}
            except subprocess.CalledProcessError as exc:  # a shallow clone has no such commit
                baseline_error = (
                    f"cannot export {baseline}: {exc.stderr.decode(errors='replace').strip()[:120]}"
                )
        functions = cold_imports.measure(trees, repeat)
    return {
        "method": 'python -X importtime -c "import app" in functions/<name>, PYTHONPATH=layers/shared; '
        "the app line's cumulative import time, median of `repeat`; cpu: the process's user+system",
        "repeat": repeat,
        "baseline": baseline if "before" in trees else None,
        **({"baseline_error": baseline_error} if baseline_error else {}),
        "functions": functions,
    }


def attempt(case: str, measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """The case's figures, or {"error": why} when it could not run: the other cases still do."""
    print(f"- {case} ...", file=sys.stderr, flush=True)
    try:
        return measure(*args)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=50, help="executes per latency figure")
    parser.add_argument("--create-repeat", type=int, default=10, help="creates per latency figure")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent run")
    parser.add_argument("--import-repeat", type=int, default=5, help="fresh interpreters per function")
    parser.add_argument(
        "--import-baseline",
        default=ISSUE_11_BASELINE,
        metavar="REV",
        help="commit whose cold imports are the baseline ('' for none; default: before issue 11)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "local-stack.json", help="the JSON; the chart next to it"
    )
    parser.add_argument(
        "--warm-pool",
        default=None,
        help="the stack's warm pool, e.g. e2b-python=10 (default: <--create-repeat> each of e2b-python "
        "and, when Docker is up, docker-python; '' none)",
    )
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker provider's figures")
    parser.add_argument(
        "--docker-concurrency", action="store_true", help="also the concurrent case on Docker"
    )
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"machine": machine(), "settings": {k: str(v) for k, v in vars(args).items()}}
    docker_missing = "skipped (--no-docker)" if args.no_docker else docker_unavailable()
    # The pool holds one sandbox per pooled create, booted before the run; nothing refills it (no
    # scheduler), so once the pooled case has drained it every other create boots, as without one.
    warm_pool = args.warm_pool
    if warm_pool is None:
        pooled = ["e2b-python"] + ([] if docker_missing else ["docker-python"])
        warm_pool = ",".join(f"{environment}={args.create_repeat}" for environment in pooled)
    with running_stack(
        port=0, aws_port=0, concurrency=args.sessions, warm_pool=warm_pool, reaper_interval_seconds=0
    ) as stack:
        # Every case's sessions live at once: over the template's default quota (10) otherwise.
        live = max(args.sessions, args.create_repeat, 10) + 2
        tenant_store(stack.dynamodb_url).set_quota_overrides(stack.tenant_id, {"max_active_sessions": live})
        environments = {"e2b-python"} | (set() if docker_missing else {"docker-python"})
        report["create_pooled"] = attempt(
            "pooled create", bench_create_pooled, stack, args.create_repeat, environments
        )
        report["execute"] = attempt("execute", bench_execute_overhead, stack, args.repeat)
        report["create"] = attempt("create", bench_create, stack, args.create_repeat)
        report["concurrency"] = attempt("concurrency", bench_concurrency, stack, args.sessions, args.seconds)
        if docker_missing:
            report["docker"] = {"error": docker_missing}
        else:
            report["docker"] = attempt("docker", bench_docker, stack, args.repeat, args.create_repeat)
            if args.docker_concurrency:
                report["docker_concurrency"] = attempt(
                    "docker concurrency",
                    bench_concurrency,
                    stack,
                    args.sessions,
                    args.seconds,
                    "docker-python",
                )
        # Last: it counts inside the workers the timed cases used (for its own requests only).
        report["round_trips"] = attempt("round trips", count_round_trips, stack)
    report["cold_import"] = attempt(
        "cold imports", bench_cold_imports, args.import_repeat, args.import_baseline or None
    )
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    print()
    print(format_table(rows(report)))
    info = report["machine"]
    print(
        f"\n{info['cores']} cores ({info['cpu_model']}), Python {info['python']}, {info['git_commit'][:12]}, "
        f"load {info['load_average'][0]} -> {info['load_average_end'][0]}; ratio = value / baseline"
    )
    print(f"written to {shown(write_json(report, args.output))}")
    chart = attempt("chart", lambda: {"path": str(write_chart(report, args.output.with_suffix(".png")))})
    print(f"chart: {shown(Path(chart['path']))}" if "path" in chart else f"no chart: {chart['error']}")
    failed = [case for case, figures in report.items() if isinstance(figures, dict) and "error" in figures]
    # A missing Docker engine or warm pool is how this machine is, not a failed measurement.
    failed = [
        case for case in failed if case not in ("docker", "create_pooled") or not _expected(report[case])
    ]
    return 1 if failed else 0


def _expected(figures: dict[str, Any]) -> bool:
    error = str(figures.get("error", ""))
    return error.startswith(("no ", "skipped", "docker-py is not installed"))


if __name__ == "__main__":
    sys.exit(main())
