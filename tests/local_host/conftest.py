"""Drive the real, unmodified ``e2b_code_interpreter.Sandbox`` against the local E2B host."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from local.e2b_host.testing import HostInfo, running_host, sdk_environment

OUTPUT_LIMIT_MB = 1


def _host_usable() -> str | None:
    if sys.platform != "linux":
        return "the local E2B host needs Linux namespaces"
    missing = [tool for tool in ("bwrap", "unshare", "setsid", "node") if shutil.which(tool) is None]
    if missing:
        return f"missing host tools: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "the local E2B host runs as root (it mounts each sandbox's tmpfs and makes its cgroups)"
    return None


@pytest.fixture(scope="session")
def e2b_host() -> Iterator[HostInfo]:
    reason = _host_usable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to run the local E2B host: {reason}")
        pytest.skip(reason)
    with running_host(extra_args=["--output-limit-mb", str(OUTPUT_LIMIT_MB)]) as host, sdk_environment(host):
        yield host


# Small limits for the exploit tests that exhaust them (a host of their own, started once).
LIMITED_HOST_ARGS: dict[str, float] = {
    "--memory-mb": 256,
    "--pids": 128,
    "--disk-mb": 32,
    "--tmp-mb": 16,
    "--inodes": 2000,
    "--cpus": 0.5,
}


@pytest.fixture(scope="session")
def limited_host(e2b_host: HostInfo) -> Iterator[HostInfo]:
    """A second local host with small per-sandbox limits; use it inside ``sdk_environment``."""
    args = [str(part) for item in LIMITED_HOST_ARGS.items() for part in item]
    with running_host(extra_args=args) as host:
        yield host


@pytest.fixture(scope="session")
def limited_args() -> dict[str, float]:
    """The per-sandbox limits of ``limited_host`` (MiB for sizes)."""
    return dict(LIMITED_HOST_ARGS)


@pytest.fixture(scope="session")
def output_limit_bytes() -> int:
    return OUTPUT_LIMIT_MB * 1024 * 1024


@pytest.fixture(scope="module")
def shared_sandbox(e2b_host: HostInfo):
    sbx = Sandbox.create(timeout=600)
    yield sbx
    sbx.kill()


@pytest.fixture
def sandbox(e2b_host: HostInfo):
    sbx = Sandbox.create(timeout=300)
    yield sbx
    sbx.kill()
