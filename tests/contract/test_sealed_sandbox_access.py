"""A sandbox's access, sealed with its session at create, reaches it from any container without a
call to E2B's control plane (issue 11, part 1): the local host counts control-plane requests.

KMS is moto's (in process); E2B is the unmodified SDK over HTTP against the local host.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws
from sandbox_gateway.adapters.e2b import E2BSandboxProvider
from sandbox_gateway.adapters.kms import KmsSealer
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Language
from sandbox_gateway.models.errors import ProviderUnavailable
from sandbox_gateway.models.execution import CodeRun
from sandbox_gateway.ports import CreatedSandbox, SandboxRef, SandboxSpec

from local.e2b_host.testing import HostInfo
from tests.contract.conftest import e2b_provider_for

ENV = next(env for env in BUILT_IN_ENVIRONMENTS if env.name == "e2b-python")


def run_of(code: str) -> CodeRun:
    return CodeRun(code=code, language=Language.PYTHON, timeout_seconds=10)


@pytest.fixture
def sealer() -> Iterator[KmsSealer]:
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(Description="sandbox access")["KeyMetadata"]["KeyId"]
        yield KmsSealer(key_id, lambda: kms)


def control_plane_requests(host: HostInfo) -> int:
    return int(requests.get(f"{host.url}/health", timeout=5).json()["requests"])


@pytest.fixture
def created(e2b_host: HostInfo, sealer: KmsSealer) -> Iterator[tuple[CreatedSandbox, SandboxRef]]:
    provider = e2b_provider_for(e2b_host, sealer=sealer)
    session_id = "ses_sealed_access"
    sandbox = provider.create(SandboxSpec(session_id, "tenant-contract", ENV, 120))
    yield sandbox, SandboxRef(sandbox.sandbox_id, session_id, ENV, int(time.time()) + 120, sandbox.access)
    provider.kill(sandbox.sandbox_id)


def a_new_container(host: HostInfo, sealer: KmsSealer | None) -> E2BSandboxProvider:
    """What a fresh Lambda container has: an adapter that has never seen the sandbox."""
    return e2b_provider_for(host, sealer=sealer)


def test_a_new_container_reaches_the_sandbox_without_the_control_plane(
    e2b_host: HostInfo, sealer: KmsSealer, created: tuple[CreatedSandbox, SandboxRef]
) -> None:
    _, ref = created
    provider = a_new_container(e2b_host, sealer)
    before = control_plane_requests(e2b_host)
    assert provider.execute(ref, run_of("x = 41\nprint(x + 1)")).stdout == "42\n"
    provider.write_file(ref, "/workspace/a.txt", b"sealed")
    assert provider.read_file(ref, "/workspace/a.txt", 1024) == b"sealed"
    assert [entry.name for entry in provider.list_files(ref, "/workspace")] == ["a.txt"]
    assert control_plane_requests(e2b_host) == before


def test_without_sealed_access_a_new_container_connects_once(
    e2b_host: HostInfo, created: tuple[CreatedSandbox, SandboxRef]
) -> None:
    """The baseline the sealed access removes: `connect` per container, then none."""
    _, ref = created
    provider = a_new_container(e2b_host, sealer=None)
    before = control_plane_requests(e2b_host)
    provider.execute(ref, run_of("1"))
    provider.execute(ref, run_of("2"))
    assert control_plane_requests(e2b_host) == before + 1


def test_the_sealed_access_holds_no_token_in_the_clear(
    e2b_host: HostInfo, sealer: KmsSealer, created: tuple[CreatedSandbox, SandboxRef]
) -> None:
    sandbox, ref = created
    assert sandbox.access is not None
    info: dict[str, Any] = requests.get(
        f"{e2b_host.url}/sandboxes/{sandbox.sandbox_id}",
        headers={"X-API-Key": e2b_host.env["E2B_API_KEY"]},
        timeout=5,
    ).json()
    token = info["envdAccessToken"]
    assert token and token not in sandbox.access
    opened = json.loads(sealer.open(sandbox.access, {"sandbox_id": ref.sandbox_id}))
    assert opened["envd_access_token"] == token
    assert "access" not in repr(sandbox) and token not in repr(ref)


def test_sealed_access_opens_only_for_its_own_sandbox(
    e2b_host: HostInfo, sealer: KmsSealer, created: tuple[CreatedSandbox, SandboxRef]
) -> None:
    sandbox, ref = created
    assert sandbox.access is not None
    with pytest.raises(ProviderUnavailable):
        sealer.open(sandbox.access, {"sandbox_id": "i0000000000000000000"})
    # Copied to an item that names another sandbox, it opens nowhere: the adapter connects to
    # that sandbox instead (and never reaches it with this one's token).
    provider = a_new_container(e2b_host, sealer)
    other = provider.create(SandboxSpec("ses_other", "tenant-contract", ENV, 120))
    try:
        moved = SandboxRef(other.sandbox_id, "ses_other", ENV, ref.expires_at, sandbox.access)
        reader = a_new_container(e2b_host, sealer)
        before = control_plane_requests(e2b_host)
        assert reader.execute(moved, run_of("print('via connect')")).stdout == "via connect\n"
        assert control_plane_requests(e2b_host) == before + 1
    finally:
        provider.kill(other.sandbox_id)


def test_an_unreadable_sealed_access_costs_a_connect_not_the_session(
    e2b_host: HostInfo, sealer: KmsSealer, created: tuple[CreatedSandbox, SandboxRef]
) -> None:
    _, ref = created
    broken = SandboxRef(ref.sandbox_id, ref.session_id, ENV, ref.expires_at, "bm90IGEgY2lwaGVydGV4dA==")
    provider = a_new_container(e2b_host, sealer)
    before = control_plane_requests(e2b_host)
    assert provider.execute(broken, run_of("print(6 * 7)")).stdout == "42\n"
    assert control_plane_requests(e2b_host) == before + 1
