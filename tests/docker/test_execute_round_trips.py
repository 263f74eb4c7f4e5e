"""What a warm execute costs on Docker, counted: Engine API requests, relay processes in the
container, and the modules the in-container relays import. A `docker exec` per call cost ~75 ms
of process start and teardown; the provider now keeps one relay exec open per container and
sends it request after request, so a warm execute makes no Engine request at all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from sandbox_gateway.adapters import docker as adapter
from sandbox_gateway.adapters.docker import AGENT, RELAY, SANDBOX_USER, DockerSandboxProvider
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.errors import ProviderError
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.ports import SandboxRef

from tests.docker.conftest import SETTINGS
from tests.support.docker_engine import processes

# Modules a one-shot command must not import: the agent's server needs them, a relay does not.
SERVER_ONLY = ("asyncio", "subprocess", "site", "concurrent.futures")
# Opening a relay: inspect the container (expiry, running), create the exec, start it.
OPEN_RELAY = ["GET json", "POST exec", "POST start"]
KILL_RELAYS = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    if open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[:4] == %r:\n"
    "        os.kill(int(pid), 9)" % [part.encode() for part in RELAY]
)


def run(provider: DockerSandboxProvider, sandbox: SandboxRef, code: str, timeout: int = 20) -> Any:
    return provider.execute(sandbox, CodeRun(code=code, language=Language.PYTHON, timeout_seconds=timeout))


@pytest.fixture
def engine_requests(provider: DockerSandboxProvider, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Engine API request the provider makes from now on (a relay's socket is not one)."""
    api = provider._docker().api
    seen: list[str] = []
    send = api.send

    def counted(request: Any, **kwargs: Any) -> Any:
        seen.append(f"{request.method} {request.path_url.split('?')[0].rsplit('/', 1)[-1]}")
        return send(request, **kwargs)

    monkeypatch.setattr(api, "send", counted)
    return seen


@pytest.fixture
def second_worker(engine: docker.DockerClient) -> Iterator[DockerSandboxProvider]:
    """Another gateway process's provider: its own relays, into the same containers."""
    other = DockerSandboxProvider(SETTINGS)
    yield other
    for sandbox_id in list(other._relays):
        other._drop_relay(sandbox_id)


def relays(engine: docker.DockerClient, sandbox: SandboxRef) -> list[str]:
    return [p for p in processes(engine, sandbox.sandbox_id) if RELAY[-1] in p]


def test_a_warm_execute_makes_no_engine_request(
    provider: DockerSandboxProvider,
    sandbox: SandboxRef,
    engine: docker.DockerClient,
    engine_requests: list[str],
) -> None:
    assert [r.formats.get("text") for r in run(provider, sandbox, "1+1").results] == ["2"]
    assert engine_requests == OPEN_RELAY  # the first execute of this process opens its relay
    engine_requests.clear()

    for expected in ("3", "4", "5"):
        outcome = run(provider, sandbox, f"{expected}")
        assert outcome.status == ExecutionStatus.OK
        assert [r.formats.get("text") for r in outcome.results] == [expected]
    assert engine_requests == []
    assert len(relays(engine, sandbox)) == 1  # one relay, used again and again


def test_a_relay_ended_by_another_workers_timeout_is_replaced_and_the_code_runs_once(
    provider: DockerSandboxProvider,
    second_worker: DockerSandboxProvider,
    sandbox: SandboxRef,
    engine: docker.DockerClient,
    engine_requests: list[str],
) -> None:
    run(provider, sandbox, "runs = 0")
    assert len(relays(engine, sandbox)) == 1
    # The timeout's sweep ends every process but the agent, its kernels and its caller: this
    # process's idle relay too.
    assert (
        run(second_worker, sandbox, "import time\ntime.sleep(60)", timeout=1).status
        == ExecutionStatus.TIMEOUT
    )
    assert len(relays(engine, sandbox)) == 1  # the second worker's, which was the caller
    engine_requests.clear()

    outcome = run(provider, sandbox, "runs += 1\nruns")
    assert [r.formats.get("text") for r in outcome.results] == ["1"]  # run once, answered
    assert engine_requests == OPEN_RELAY  # replaced once, transparently
    assert [r.formats.get("text") for r in run(second_worker, sandbox, "runs").results] == ["1"]


def test_a_relay_lost_after_it_took_the_request_is_not_sent_it_again(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    run(provider, sandbox, "runs = 0")
    container = engine.containers.get(sandbox.sandbox_id)

    def kill_the_relay() -> None:
        time.sleep(1)  # the cell is running
        container.exec_run(["python3", "-c", KILL_RELAYS], user=SANDBOX_USER)

    killer = threading.Thread(target=kill_the_relay)
    killer.start()
    with pytest.raises(ProviderError):  # no answer: the same as an exec cut short
        run(provider, sandbox, "import time\ntime.sleep(2)\nruns += 1")
    killer.join()

    assert [r.formats.get("text") for r in run(provider, sandbox, "runs").results] == ["1"]


def test_a_relay_the_provider_lets_go_of_ends(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    run(provider, sandbox, "1+1")
    assert len(relays(engine, sandbox)) == 1
    provider._drop_relay(sandbox.sandbox_id)  # as the LRU bound or the process's exit does
    deadline = time.monotonic() + 5
    while relays(engine, sandbox) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert relays(engine, sandbox) == []


def test_a_container_whose_relay_cannot_start_is_still_answered_by_an_exec_per_call(
    provider: DockerSandboxProvider,
    sandbox: SandboxRef,
    engine_requests: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in a container from an image made before relays: the relay ends before taking anything.
    monkeypatch.setattr(adapter, "RELAY", ["python3", "-I", "-S", "/opt/sandbox/no-such-relay.py"])
    for expected in ("1", "2"):
        outcome = run(provider, sandbox, f"runs = {expected}\nruns")
        assert [r.formats.get("text") for r in outcome.results] == [expected]
    assert engine_requests == [*OPEN_RELAY, "POST exec", "POST start"] * 2  # a relay tried, then `call`


class _Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_relays_are_kept_one_per_container_and_least_recently_used_closed_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter, "MAX_RELAYS", 2)
    keeper = DockerSandboxProvider(SETTINGS)
    first, second, third, again = (_Closable() for _ in range(4))
    keeper._keep_relay("a", first)  # type: ignore[arg-type]
    keeper._keep_relay("b", second)  # type: ignore[arg-type]
    keeper._keep_relay("a", again)  # type: ignore[arg-type]
    assert first.closed and not again.closed  # two calls at once opened two: one is kept
    keeper._keep_relay("c", third)  # type: ignore[arg-type]
    assert second.closed  # "a" was used after "b"
    assert list(keeper._relays) == ["a", "c"] and not (again.closed or third.closed)


@pytest.mark.parametrize("command", [[*AGENT, "list", "/workspace"], [*AGENT, "call"], RELAY])
def test_the_per_call_commands_import_nothing_only_the_server_needs(
    engine: docker.DockerClient, sandbox: SandboxRef, command: list[str]
) -> None:
    container = engine.containers.get(sandbox.sandbox_id)
    python, *rest = command
    argv = [python, "-X", "importtime", *rest]
    result = container.exec_run(argv, user=SANDBOX_USER, stdin=False, demux=True)
    imported = {line.split("|")[-1].strip() for line in (result.output[1] or b"").decode().splitlines()}
    assert "socket" in imported  # the report is there at all
    assert not imported & set(SERVER_ONLY), sorted(imported & set(SERVER_ONLY))
