"""Fixtures of the Docker provider's tests, and their honesty: in CI (CI=true) a Docker test
that skips is a failure, and the summary says how many Docker tests ran."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_gateway.config import Settings
from sandbox_gateway.ports import SandboxRef

from tests.support.docker_engine import in_ci, require_docker_image, sandbox_for

HERE = Path(__file__).resolve().parent
SETTINGS = Settings(docker_memory_mb=256, docker_pids_limit=64)
_outcomes: Counter[str] = Counter()


@pytest.fixture(scope="session")
def engine() -> Any:
    require_docker_image()
    import docker  # noqa: PLC0415

    return docker.from_env()


@pytest.fixture(scope="session")
def provider(engine: Any) -> Any:
    from sandbox_gateway.adapters.docker import DockerSandboxProvider  # noqa: PLC0415

    return DockerSandboxProvider(SETTINGS)


@pytest.fixture
def sandbox(provider: Any, request: pytest.FixtureRequest) -> Iterator[SandboxRef]:
    yield from sandbox_for(provider, request.node.name)


def _is_docker_test(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(HERE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not _is_docker_test(item):
        return
    if report.skipped and in_ci():
        # However the skip came about (no engine, no image, a skip marker): CI must run them.
        report.outcome = "failed"
        report.longrepr = f"Docker test skipped in CI (CI=true): {report.longrepr}"
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sum(_outcomes.values()):
        counts = ", ".join(f"{_outcomes[k]} {k}" for k in ("passed", "failed", "skipped"))
        terminalreporter.write_line(f"docker tests: {counts}")
