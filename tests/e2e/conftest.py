"""End-to-end tier: the local stack (gateway from template.yaml, moto server, local E2B host) over HTTP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
import requests
from sandbox_gateway.models.tenant import SCOPES

from local.stack import TABLE_NAME, Stack, running_stack, tenant_store

# The local gateway caches the authorizer's answers this long instead of the template's 300 s, so a
# test can see a revoked key stop working.
AUTHORIZER_CACHE_SECONDS = 2.0
DEV_TENANT_MAX_ACTIVE_SESSIONS = 1000


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack(
        port=0, concurrency=4, authorizer_cache_seconds=AUTHORIZER_CACHE_SECONDS, aws_port=0
    ) as running:
        # Many tests leave their sessions to the reaper: the dev tenant must not hit the template's
        # live-session quota (10) because of earlier tests. Other tenants keep the defaults.
        tenant_store(running.dynamodb_url).set_quota_overrides(
            running.tenant_id, {"max_active_sessions": DEV_TENANT_MAX_ACTIVE_SESSIONS}
        )
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_key(
    stack: Stack, tenant_id: str | None = None, scopes: Iterable[str] = SCOPES, name: str = "e2e"
) -> tuple[str, str, str]:
    """A new key in the stack's table, as `sgw admin keys create` makes one: (tenant, key id, key).
    Of a tenant of its own unless `tenant_id` is given."""
    tenant_id = tenant_id or f"e2e-{secrets.token_hex(4)}"
    record, key = tenant_store(stack.dynamodb_url).create_key(tenant_id, name, scopes, int(time.time()))
    return tenant_id, record.key_id, key


class Client:
    """requests against the stack, with `api_key` (the stack's dev key) on every request."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        if api_key is not None:
            self.http.headers.update(bearer(api_key))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base_url + path, timeout=60, **kwargs)

    def create_session(self, **body: Any) -> str:
        payload = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"} | body
        response = self.request("POST", "/api/sessions", json=payload)
        assert response.status_code == 201, response.text
        return str(response.json()["session_id"])

    def execute(
        self, session_id: str, code: str, language: str = "python", **extra: Any
    ) -> requests.Response:
        body = {"session_id": session_id, "code": code, "language": language} | extra
        return self.request("POST", "/api/e2b/execute", json=body)


@pytest.fixture(scope="session")
def client(stack: Stack) -> Client:
    return Client(stack.url, stack.api_key)


def table_of(stack: Stack) -> Any:
    """The stack's sessions table (boto3 resource), as a test reads it behind the API."""
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return dynamodb.Table(TABLE_NAME)


@pytest.fixture(scope="session")
def sessions_table(stack: Stack) -> Any:
    return table_of(stack)
