"""A Docker engine and the sandbox image for the Docker provider's tests.

Where no engine can run, the tests say so loudly and skip; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_image: str | None = None


def require_docker_image() -> str:
    """Ping the engine, build (or reuse) the sandbox image, return its tag."""
    global _image  # noqa: PLW0603 - built once per test session
    if _image is not None:
        return _image
    try:
        import docker  # noqa: PLC0415

        docker.from_env(timeout=10).ping()
    except Exception as exc:  # no socket, daemon down, docker-py missing
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
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run them: .ci/run installs and starts dockerd)")
    pytest.skip(message)
