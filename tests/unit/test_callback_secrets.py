"""Callback signing secrets and tenant existence in the tenant store (DynamoDBTenantStore on moto):
a secret is created once and stable, rotation replaces it, neither wipes the tenant item; a key
registers its tenant."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore, TenantCallbackSecrets
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.session import Session, SessionStatus
from sandbox_gateway.models.tenant import SCOPES

from tests.support.aws import create_sessions_table

NOW = 1_795_687_200
SECRET = re.compile(r"^whsec_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield create_sessions_table(boto3.resource("dynamodb"), os.environ["TABLE_NAME"])


@pytest.fixture
def store(table: Any) -> DynamoDBTenantStore:
    return DynamoDBTenantStore(table)


def tenant_item(table: Any, tenant: str) -> dict[str, Any] | None:
    return table.get_item(Key={"pk": f"TENANT#{tenant}", "sk": "TENANT"}).get("Item")


def test_callback_secret_is_created_once_and_stable(store: DynamoDBTenantStore, table: Any) -> None:
    first = store.callback_secret("acme")
    assert SECRET.fullmatch(first)
    assert store.callback_secret("acme") == first
    assert DynamoDBTenantStore(table).callback_secret("acme") == first  # stored, not cached
    assert store.callback_secret("globex") != first  # per tenant


def test_callback_secret_first_use_race_keeps_the_first_stored(store: DynamoDBTenantStore) -> None:
    # Two first uses at once: both pass the read, both write; if_not_exists keeps the first.
    first = store._set_callback_secret("acme", "SET callback_secret = if_not_exists(callback_secret, :new)")
    second = store._set_callback_secret("acme", "SET callback_secret = if_not_exists(callback_secret, :new)")
    assert first == second == store.callback_secret("acme")


def test_rotate_replaces_the_secret(store: DynamoDBTenantStore) -> None:
    first = store.callback_secret("acme")
    rotated = store.rotate_callback_secret("acme")
    assert SECRET.fullmatch(rotated) and rotated != first
    assert store.callback_secret("acme") == rotated


def test_callback_secrets_port_wraps_the_store(store: DynamoDBTenantStore) -> None:
    secrets = TenantCallbackSecrets(store)
    first = secrets.secret("acme")
    assert secrets.secret("acme") == first == store.callback_secret("acme")
    rotated = secrets.rotate("acme")
    assert rotated != first and secrets.secret("acme") == rotated


def test_secrets_keep_the_tenant_items_quotas_and_live_count(store: DynamoDBTenantStore, table: Any) -> None:
    store.set_quota_overrides("acme", {"max_active_sessions": 3})
    DynamoDBSessionRepository(table).put_new(
        Session(
            session_id="sess_1",
            tenant_id="acme",
            agent="ci",
            environment="python-3.12",
            provider=Provider.DOCKER,
            status=SessionStatus.CREATING,
            created_at=NOW,
            updated_at=NOW,
            expires_at=NOW + 600,
        )
    )
    store.callback_secret("acme")
    store.rotate_callback_secret("acme")
    store.create_key("acme", "ci", SCOPES, NOW + 5)

    state = store.tenant("acme")
    assert state.quota_overrides == {"max_active_sessions": 3}
    assert state.active_sessions == 1
    item = tenant_item(table, "acme")
    assert item is not None and int(item["created_at"]) == NOW + 5


def test_tenant_exists_once_a_key_is_created(store: DynamoDBTenantStore, table: Any) -> None:
    assert store.tenant_exists("acme") is False
    store.create_key("acme", "ci", SCOPES, NOW)
    assert store.tenant_exists("acme") is True
    assert store.tenant_exists("globex") is False

    store.create_key("acme", "second", SCOPES, NOW + 60)
    item = tenant_item(table, "acme")
    assert item is not None and int(item["created_at"]) == NOW  # the first key's time stays


def test_tenant_exists_for_a_tenant_with_sessions_or_quotas(store: DynamoDBTenantStore) -> None:
    store.set_quota_overrides("quota-only", {"max_active_sessions": 1})
    assert store.tenant_exists("quota-only") is True


def test_register_tenant_is_idempotent(store: DynamoDBTenantStore, table: Any) -> None:
    store.register_tenant("legacy", NOW)
    store.register_tenant("legacy", NOW + 100)
    assert store.tenant_exists("legacy") is True
    item = tenant_item(table, "legacy")
    assert item is not None and int(item["created_at"]) == NOW


def test_a_refused_key_registers_no_tenant(store: DynamoDBTenantStore) -> None:
    given = "sgw_0123456789ab_" + "A" * 43
    store.create_key("acme", "first", SCOPES, NOW, key=given)
    with pytest.raises(StorageUnavailable):
        store.create_key("dev", "clash", SCOPES, NOW, key=given[:-1] + "B")  # same key id
    assert store.tenant_exists("dev") is False  # one transaction: no key, no tenant


def test_unreachable_table_is_storage_unavailable(store: DynamoDBTenantStore, monkeypatch: Any) -> None:
    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.invalid")

    for method in ("get_item", "update_item"):
        monkeypatch.setattr(store._table, method, unreachable)
    for call in (
        lambda: store.callback_secret("acme"),
        lambda: store.rotate_callback_secret("acme"),
        lambda: store.tenant_exists("acme"),
    ):
        with pytest.raises(StorageUnavailable):
            call()
