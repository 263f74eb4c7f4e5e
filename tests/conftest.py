"""Shared test setup. Fake AWS credentials and Powertools settings come before any handler import."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support.docker_engine import in_ci

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "sandbox-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "SandboxGatewayTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "TABLE_NAME": "sandbox-gateway-sessions-test",
    }
)
for leaked in (
    "E2B_API_KEY",
    "E2B_API_URL",
    "E2B_SANDBOX_URL",
    "E2B_API_KEY_SECRET_ID",
    "AWS_SAM_LOCAL",
    "LOCAL_MODE",
):
    os.environ.pop(leaked, None)


# --- Docker tests are honest: in CI (CI=true) a tests/docker test that skips is a failure, and
# the summary says how many tests ran on Docker (tests/docker and the contract suite's cases).
DOCKER_TESTS = Path(__file__).resolve().parent / "docker"
_docker_outcomes: Counter[str] = Counter()


def _is_docker_test(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(DOCKER_TESTS)


def _runs_on_docker(item: pytest.Item) -> bool:
    """tests/docker, and the provider contract suite's Docker cases (whose skips are the suite's
    own, e.g. E2B-only tests; an unreachable engine fails them in CI in require_docker_image)."""
    return _is_docker_test(item) or "[docker" in item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not _runs_on_docker(item):
        return
    if report.skipped and in_ci() and _is_docker_test(item):
        # However the skip came about (no engine, no image, a skip marker): CI must run them.
        report.outcome = "failed"
        report.longrepr = f"Docker test skipped in CI (CI=true): {report.longrepr}"
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _docker_outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sum(_docker_outcomes.values()):
        counts = ", ".join(f"{_docker_outcomes[k]} {k}" for k in ("passed", "failed", "skipped"))
        terminalreporter.write_line(f"docker tests: {counts}")
