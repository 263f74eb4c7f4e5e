"""WORKSPACE_ROOT is where code runs in every provider: the working directory of each language."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.execution import CodeRun
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec

from tests.contract.conftest import e2b_provider_for, environment
from tests.support.docker_engine import require_docker_image

WORKSPACE = "/home/user"  # not the default /workspace
PRINT_CWD = {
    Language.PYTHON: "import os; print(os.getcwd())",
    Language.BASH: "pwd",
}


@pytest.fixture(params=["e2b", "docker"])
def configured(request: pytest.FixtureRequest) -> Iterator[tuple[SandboxProvider, SandboxRef]]:
    kind = str(request.param)
    if kind == "docker":
        require_docker_image()
        provider: SandboxProvider = DockerSandboxProvider(Settings(workspace_root=WORKSPACE))
    else:
        provider = e2b_provider_for(request.getfixturevalue("e2b_host"), workspace=WORKSPACE)
    env = environment(kind)
    session_id = f"ses_workspace_{kind}_{time.time_ns()}"
    sandbox_id = provider.create(SandboxSpec(session_id, "tenant-contract", env, 300)).sandbox_id
    yield provider, SandboxRef(sandbox_id, session_id, env, int(time.time()) + 300)
    provider.kill(sandbox_id)


@pytest.mark.parametrize("language", list(PRINT_CWD))
def test_code_runs_in_the_configured_workspace(
    configured: tuple[SandboxProvider, SandboxRef], language: Language
) -> None:
    provider, ref = configured
    outcome = provider.execute(ref, CodeRun(PRINT_CWD[language], language, timeout_seconds=20))
    assert outcome.error is None, outcome
    assert outcome.stdout.strip() == WORKSPACE
