"""What a warm execute costs on Docker, counted: Engine API requests, and the modules the per-call
relay inside the container imports (each execute starts a fresh interpreter there through
`docker exec`, so every import is paid on every call: asyncio alone was ~45 ms of ~165 ms)."""

from __future__ import annotations

from typing import Any

import docker
import pytest
from sandbox_gateway.adapters.docker import AGENT, SANDBOX_USER, DockerSandboxProvider
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.ports import SandboxRef

# Modules a one-shot command must not import: the agent's server needs them, a relay does not.
SERVER_ONLY = ("asyncio", "subprocess", "site", "concurrent.futures")


def test_a_warm_execute_makes_three_engine_requests(
    provider: DockerSandboxProvider, sandbox: SandboxRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = CodeRun(code="1+1", language=Language.PYTHON, timeout_seconds=20)
    assert provider.execute(sandbox, run).status == ExecutionStatus.OK  # the kernel is warm now
    api = provider._docker().api
    requests: list[str] = []
    send = api.send

    def counted(request: Any, **kwargs: Any) -> Any:
        requests.append(f"{request.method} {request.path_url.split('?')[0].rsplit('/', 1)[-1]}")
        return send(request, **kwargs)

    monkeypatch.setattr(api, "send", counted)
    outcome = provider.execute(sandbox, run)
    assert outcome.status == ExecutionStatus.OK
    assert [r.formats.get("text") for r in outcome.results] == ["2"]
    # Inspect the container, create the exec, start it (its socket carries the request and the events).
    assert requests == ["GET json", "POST exec", "POST start"]


@pytest.mark.parametrize("command", [["list", "/workspace"], ["call"]])
def test_the_per_call_commands_import_nothing_only_the_server_needs(
    engine: docker.DockerClient, sandbox: SandboxRef, command: list[str]
) -> None:
    container = engine.containers.get(sandbox.sandbox_id)
    python, *flags = AGENT[:-1]
    argv = [python, *flags, "-X", "importtime", AGENT[-1], *command]
    result = container.exec_run(argv, user=SANDBOX_USER, stdin=False, demux=True)
    imported = {line.split("|")[-1].strip() for line in (result.output[1] or b"").decode().splitlines()}
    assert "json" in imported  # the report is there at all
    assert not imported & set(SERVER_ONLY), sorted(imported & set(SERVER_ONLY))
