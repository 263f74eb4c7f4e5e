"""A Docker engine and the sandbox image for the Docker provider's tests, and their helpers.

Where no engine can run, the tests say so loudly and skip; in CI (CI=true) that is a failure
(here, and again in tests/docker/conftest.py for any skip of a Docker test).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_image: str | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_docker_image() -> str:
    """Ping the engine, build (or reuse) the sandbox image, return its tag."""
    global _image  # noqa: PLW0603 - built once per test session
    if _image is not None:
        return _image
    try:
        import docker  # noqa: PLC0415

        docker.from_env(timeout=10).ping()
    except Exception as exc:  # no socket, daemon down, docker-py missing: all the same here
        _unavailable(f"no Docker engine is reachable ({type(exc).__name__}: {exc})")
    build = subprocess.run(
        ["bash", str(ROOT / "local/docker_sandbox/build.sh")], capture_output=True, text=True, check=False
    )
    if build.returncode != 0:
        _unavailable(f"the sandbox image could not be built:\n{build.stderr[-2000:]}")
    _image = build.stdout.strip().splitlines()[-1]
    return _image


def _unavailable(reason: str) -> None:
    message = f"DOCKER PROVIDER TESTS NOT RUN: {reason}"
    if in_ci():
        pytest.fail(message + " (CI must run them: .ci/run installs and starts dockerd)")
    pytest.skip(message)


# --- helpers shared by tests/docker ------------------------------------------------------------
def sandbox_for(provider: Any, name: str, timeout_seconds: int = 300) -> Iterator[Any]:
    """A sandbox for one test, removed after it (used by the `sandbox` fixtures)."""
    from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS  # noqa: PLC0415
    from sandbox_gateway.ports import SandboxRef, SandboxSpec  # noqa: PLC0415

    environment = next(e for e in BUILT_IN_ENVIRONMENTS if e.name == "docker-python")
    session_id = "ses_docker_" + re.sub(r"[^a-z0-9]", "", name.lower())[:40]
    provider.kill(f"sgw-{session_id}")  # left by an interrupted earlier run, if any
    sandbox_id = provider.create(
        SandboxSpec(session_id, "tenant-docker", environment, timeout_seconds)
    ).sandbox_id
    try:
        yield SandboxRef(sandbox_id, session_id, environment, int(time.time()) + timeout_seconds)
    finally:
        provider.kill(sandbox_id)


def processes(engine: Any, sandbox_id: str) -> list[str]:
    """Command lines of every process in the container (but zombies), seen by a root exec."""
    script = (
        "for p in /proc/[0-9]*; do grep -q '^State:.*Z' $p/status 2>/dev/null"
        " || { tr '\\0' ' ' < $p/cmdline; echo; }; done"
    )
    output = engine.containers.get(sandbox_id).exec_run(["sh", "-c", script]).output.decode()
    return [line for line in output.splitlines() if line.strip()]
