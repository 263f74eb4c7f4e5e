"""The local gateway's worker processes scale as Lambda's execution environments do: a new one when
every worker of the function is busy, never more than the cap, idle ones reused, a dead one replaced.

Each test counts processes (their pids), never time: handlers hold their invocation open until the
test opens a gate, so concurrency is what the test makes it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from local.gateway import FunctionPools
from local.template import Route

HANDLER = """
import os
import time
from pathlib import Path


def handler(event, context):
    if event.get("started"):  # tell the test this worker is in an invocation, then wait for the gate
        Path(event["started"], str(os.getpid())).write_text("")
        gate = Path(event["gate"])
        while not gate.exists():
            time.sleep(0.005)
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {"pid": os.getpid(), "env": {name: os.environ.get(name) for name in event.get("env", [])}}
"""


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(HANDLER)
    return tmp_path / "code"


@pytest.fixture
def make_pools() -> Iterator[Any]:
    made: list[FunctionPools] = []

    def make(concurrency: int, environment: dict[str, str] | None = None) -> FunctionPools:
        made.append(FunctionPools(environment or {}, concurrency))
        return made[-1]

    yield make
    for pools in made:
        pools.shutdown()


def route(code_dir: Path, function: str = "TestFunction", timeout_seconds: int = 60) -> Route:
    return Route("POST", "/test", function, code_dir, "app.handler", timeout_seconds)


class Gate:
    """Holds invocations open: each writes its pid into `started` and waits until `open()`."""

    def __init__(self, tmp_path: Path) -> None:
        self.started = tmp_path / "started"
        self.started.mkdir()
        self.path = tmp_path / "gate"

    def event(self) -> dict[str, str]:
        return {"started": str(self.started), "gate": str(self.path)}

    def wait_started(self, count: int) -> set[int]:
        deadline = time.monotonic() + 60  # spawning and importing on a busy machine; a bound, not a figure
        while len(pids := {int(p.name) for p in self.started.iterdir()}) < count:
            assert time.monotonic() < deadline, f"{len(pids)} of {count} invocations started"
            time.sleep(0.01)
        return pids

    def open(self) -> None:
        self.path.write_text("")


def is_running(pid: int) -> bool:
    """Neither gone nor a zombie (killed, not yet reaped)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def invoke_all(pools: FunctionPools, target: Route, events: list[dict[str, Any]]) -> list[Future[Any]]:
    runner = ThreadPoolExecutor(len(events))
    futures = [runner.submit(pools.invoke, target, event) for event in events]
    runner.shutdown(wait=False)
    return futures


def test_pools_start_a_worker_per_concurrent_invocation_up_to_the_cap(
    make_pools: Any, code_dir: Path, tmp_path: Path
) -> None:
    pools, target, gate = make_pools(3), route(code_dir), Gate(tmp_path)

    futures = invoke_all(pools, target, [gate.event() for _ in range(3)])
    busy = gate.wait_started(3)
    gate.open()

    assert len(busy) == 3
    assert sorted(busy) == pools.workers("TestFunction")
    assert {future.result(timeout=60)["pid"] for future in futures} == busy


def test_pools_never_start_more_workers_than_the_cap(make_pools: Any, code_dir: Path, tmp_path: Path) -> None:
    pools, target, gate = make_pools(2), route(code_dir), Gate(tmp_path)

    futures = invoke_all(pools, target, [gate.event() for _ in range(5)])
    busy = gate.wait_started(2)
    assert len(pools.workers("TestFunction")) == 2  # the three others wait for a free worker
    gate.open()
    results = [future.result(timeout=60) for future in futures]

    assert {result["pid"] for result in results} == busy  # all five ran, on the same two processes
    assert pools.workers("TestFunction") == sorted(busy)


def test_pools_reuse_an_idle_worker_instead_of_starting_another(make_pools: Any, code_dir: Path) -> None:
    pools, target = make_pools(8), route(code_dir)

    pids = {pools.invoke(target, {})["pid"] for _ in range(5)}

    assert len(pids) == 1
    assert pools.workers("TestFunction") == sorted(pids)


def test_pools_reuse_the_worker_used_last_when_several_are_idle(
    make_pools: Any, code_dir: Path, tmp_path: Path
) -> None:
    pools, target, gate = make_pools(3), route(code_dir), Gate(tmp_path)
    futures = invoke_all(pools, target, [gate.event() for _ in range(3)])
    gate.wait_started(3)
    gate.open()
    for future in futures:
        future.result(timeout=60)

    first = pools.invoke(target, {})["pid"]
    # One request at a time keeps going to the same (warmest) worker; the others stay idle, alive.
    assert {pools.invoke(target, {})["pid"] for _ in range(4)} == {first}
    assert len(pools.workers("TestFunction")) == 3


def test_pools_replace_a_worker_killed_mid_invocation(
    make_pools: Any, code_dir: Path, tmp_path: Path
) -> None:
    pools, target, gate = make_pools(1), route(code_dir), Gate(tmp_path)
    (future,) = invoke_all(pools, target, [gate.event()])
    (victim,) = gate.wait_started(1)

    os.kill(victim, signal.SIGKILL)  # out of memory, or killed: what ProcessPoolExecutor reports

    with pytest.raises(BrokenProcessPool):
        future.result(timeout=60)
    assert pools.workers("TestFunction") == []
    after = pools.invoke(target, {})["pid"]  # the cap is one: the dead worker's place was freed
    assert after != victim
    assert pools.workers("TestFunction") == [after]


def test_pools_replace_a_worker_that_died_while_idle(make_pools: Any, code_dir: Path) -> None:
    pools, target = make_pools(1), route(code_dir)
    victim = pools.invoke(target, {})["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while is_running(victim):
        assert time.monotonic() < deadline
        time.sleep(0.01)

    after = pools.invoke(target, {})["pid"]

    assert after != victim
    assert pools.workers("TestFunction") == [after]


def test_pools_keep_each_functions_own_environment(make_pools: Any, code_dir: Path) -> None:
    pools = make_pools(2, {"SHARED": "everyone", "E2B_OUTPUT_LIMIT_BYTES": "1024"})
    names = ["SHARED", "E2B_OUTPUT_LIMIT_BYTES"]

    # The template gives WorkerFunction its own, larger output limit; the Globals' value is the others'.
    worker = pools.invoke(route(code_dir, "WorkerFunction"), {"env": names})["env"]
    execute = pools.invoke(route(code_dir, "ExecuteFunction"), {"env": names})["env"]

    assert worker == {"SHARED": "everyone", "E2B_OUTPUT_LIMIT_BYTES": "33554432"}
    assert execute == {"SHARED": "everyone", "E2B_OUTPUT_LIMIT_BYTES": "1024"}
    assert not set(pools.workers("WorkerFunction")) & set(pools.workers("ExecuteFunction"))


def test_pools_reraise_a_functions_exception_and_keep_its_worker(make_pools: Any, code_dir: Path) -> None:
    pools, target = make_pools(1), route(code_dir)
    pid = pools.invoke(target, {})["pid"]

    with pytest.raises(ValueError, match="no such thing") as raised:
        pools.invoke(target, {"fail": "no such thing"})

    assert "in handler" in str(raised.value.__cause__)  # the worker's traceback
    assert pools.workers("TestFunction") == [pid]


def test_pools_end_a_timed_out_invocations_worker(make_pools: Any, code_dir: Path, tmp_path: Path) -> None:
    pools, gate = make_pools(1), Gate(tmp_path)
    warm = pools.invoke(route(code_dir), {})["pid"]  # started and imported: no start-up in the timeout

    with pytest.raises(FutureTimeout):  # answered after timeout + 1 s, as before
        pools.invoke(route(code_dir, timeout_seconds=1), gate.event())

    assert gate.wait_started(1) == {warm}
    assert pools.workers("TestFunction") == []
    assert pools.invoke(route(code_dir), {})["pid"] != warm


def test_pools_shutdown_stops_idle_workers(make_pools: Any, code_dir: Path) -> None:
    pools = make_pools(2)
    pid = pools.invoke(route(code_dir), {})["pid"]

    pools.shutdown()

    assert not is_running(pid)
    with pytest.raises(RuntimeError):
        pools.invoke(route(code_dir), {})


def test_pools_serve_many_threads_with_at_most_cap_workers(make_pools: Any, code_dir: Path) -> None:
    pools, target = make_pools(3), route(code_dir)
    results: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(5):
            pid = pools.invoke(target, {})["pid"]
            with lock:
                results.append(pid)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert len(results) == 30
    assert 1 <= len(set(results)) <= 3
    assert len(pools.workers("TestFunction")) <= 3


def test_pools_warm_starts_one_worker_per_function_that_requests_then_use(
    make_pools: Any, code_dir: Path
) -> None:
    pools = make_pools(4)

    pools.warm([route(code_dir), route(code_dir, "ExecuteFunction"), route(code_dir)])
    (warm,) = pools.workers("TestFunction")

    assert len(pools.workers("ExecuteFunction")) == 1
    assert pools.invoke(route(code_dir), {})["pid"] == warm
