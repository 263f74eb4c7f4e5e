"""The E2B adapter's warm-pool half (issue 11, part 5) through the unmodified SDK against the local
host: a booted sandbox is ready (workspace, warm kernel) and nobody's; binding gives it the
session's lifetime with one control-plane call, and its access, sealed for the sandbox, is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import boto3
import pytest
import requests
from moto import mock_aws
from sandbox_gateway.adapters.kms import KmsSealer
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Language
from sandbox_gateway.models.errors import ProviderUnavailable
from sandbox_gateway.models.execution import CodeRun
from sandbox_gateway.ports import PooledSandbox, SandboxRef, SandboxSpec

from local.e2b_host.testing import HostInfo
from tests.contract.conftest import e2b_provider_for

ENV = next(env for env in BUILT_IN_ENVIRONMENTS if env.name == "e2b-python")


@pytest.fixture
def sealer() -> Iterator[KmsSealer]:
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        yield KmsSealer(kms.create_key()["KeyMetadata"]["KeyId"], lambda: kms)


def host_view(host: HostInfo, sandbox_id: str) -> dict:
    response = requests.get(
        f"{host.url}/sandboxes/{sandbox_id}", headers={"X-API-Key": host.env["E2B_API_KEY"]}, timeout=5
    )
    return dict(response.json())


def control_plane_requests(host: HostInfo) -> int:
    return int(requests.get(f"{host.url}/health", timeout=5).json()["requests"])


def test_a_booted_sandbox_is_bound_to_one_session(e2b_host: HostInfo, sealer: KmsSealer) -> None:
    pool_container = e2b_provider_for(e2b_host, sealer=sealer)
    booted_at = time.time()
    booted = pool_container.boot(ENV, 900)
    try:
        assert host_view(e2b_host, booted.sandbox_id)["metadata"] == {"pool": "e2b-python"}
        pooled = PooledSandbox(
            "e2b-python", booted.sandbox_id, booted_at, int(booted_at) + 900, booted.access
        )

        sessions_container = e2b_provider_for(e2b_host, sealer=sealer)
        before = control_plane_requests(e2b_host)
        bound = sessions_container.bind(pooled, SandboxSpec("ses_pooled", "tenant-a", ENV, 120))
        assert control_plane_requests(e2b_host) == before + 1  # set_timeout, and no connect
        end = datetime.fromisoformat(host_view(e2b_host, booted.sandbox_id)["endAt"]).timestamp()
        assert abs(end - (time.time() + 120)) < 10  # the session's lifetime, not the pool's

        # Sealed for the sandbox at boot, the access is the session's as it is: no KMS call to bind.
        assert (bound.sandbox_id, bound.access) == (booted.sandbox_id, booted.access)
        assert booted.access is not None
        with pytest.raises(ProviderUnavailable):
            sealer.open(booted.access, {"sandbox_id": "i0000000000000000000"})

        execute_container = e2b_provider_for(e2b_host, sealer=sealer)
        ref = SandboxRef(bound.sandbox_id, "ses_pooled", ENV, int(time.time()) + 120, bound.access)
        before = control_plane_requests(e2b_host)
        ran = execute_container.execute(
            ref, CodeRun(code="import os; print(os.getcwd())", language=Language.PYTHON, timeout_seconds=10)
        )
        assert ran.stdout == "/workspace\n"  # prepared at boot
        assert control_plane_requests(e2b_host) == before
    finally:
        pool_container.kill(booted.sandbox_id)
