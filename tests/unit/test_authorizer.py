"""The Lambda authorizer's decision against a real key store (DynamoDBTenantStore on moto):
valid, revoked, unknown, malformed, missing header, wrong scheme; and what the table keeps."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sandbox_gateway import wiring
from sandbox_gateway.adapters.tenants import TOUCH_EVERY_SECONDS, DynamoDBTenantStore
from sandbox_gateway.auth import authorize
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.tenant import SCOPES
from sandbox_gateway.observability import logger

from tests.support.aws import create_sessions_table
from tests.support.handlers import FakeLambdaContext, load_handler_module

NOW = 1_795_687_200


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield create_sessions_table(boto3.resource("dynamodb"), os.environ["TABLE_NAME"])


@pytest.fixture
def store(table: Any) -> DynamoDBTenantStore:
    return DynamoDBTenantStore(table)


@pytest.fixture
def issued(store: DynamoDBTenantStore) -> tuple[str, str]:
    """(key id, key) of tenant acme with scopes sessions and files."""
    record, key = store.create_key("acme", "ci", ("sessions", "files"), NOW)
    return record.key_id, key


def event_with(authorization: str | None, header_name: str = "authorization") -> dict[str, Any]:
    """A payload-2.0 REQUEST authorizer event, as API Gateway sends it."""
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com"}
    if authorization is not None:
        headers[header_name] = authorization
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/api/sessions",
        "identitySource": [authorization] if authorization is not None else [],
        "routeKey": "GET /api/sessions",
        "rawPath": "/api/sessions",
        "headers": headers,
        "requestContext": {"http": {"method": "GET", "path": "/api/sessions"}},
    }


def test_authorizer_allows_a_valid_key_with_its_tenant_key_id_and_scopes(
    store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued

    answer = authorize(event_with(f"Bearer {key}"), store, NOW)

    assert answer == {
        "isAuthorized": True,
        # "quotas": the tenant's overrides, read with the key (none yet): routes then read none.
        "context": {"tenant_id": "acme", "key_id": key_id, "scopes": "sessions,files", "quotas": "{}"},
    }


def test_the_answer_carries_the_tenants_quota_overrides_as_a_string(
    store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    _, key = issued
    store.set_quota_overrides("acme", {"max_code_bytes": 100, "max_active_sessions": 2})

    context = authorize(event_with(f"Bearer {key}"), store, NOW)["context"]

    # API Gateway takes only strings, numbers and booleans as context values.
    assert all(isinstance(value, str | int | float | bool) for value in context.values())
    assert json.loads(context["quotas"]) == {"max_code_bytes": 100, "max_active_sessions": 2}


def test_a_failing_quota_read_still_allows_but_sends_no_quotas(
    store: DynamoDBTenantStore, issued: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without quotas in the answer each route reads them itself: never "no limits"."""
    _, key = issued

    def unavailable(tenant_id: str) -> dict[str, int]:
        raise StorageUnavailable("down")

    monkeypatch.setattr(store, "quota_overrides", unavailable)
    answer = authorize(event_with(f"Bearer {key}"), store, NOW)

    assert answer["isAuthorized"] is True and "quotas" not in answer["context"]


@pytest.mark.parametrize("header_name", ["Authorization", "AUTHORIZATION", "authorization"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_authorizer_header_name_and_scheme_are_case_insensitive(
    store: DynamoDBTenantStore, issued: tuple[str, str], header_name: str, scheme: str
) -> None:
    _, key = issued
    assert authorize(event_with(f"{scheme} {key}", header_name), store, NOW)["isAuthorized"] is True


def test_authorizer_denies_a_revoked_key(store: DynamoDBTenantStore, issued: tuple[str, str]) -> None:
    key_id, key = issued
    assert authorize(event_with(f"Bearer {key}"), store, NOW)["isAuthorized"] is True

    assert store.revoke_key(key_id) is not None

    assert authorize(event_with(f"Bearer {key}"), store, NOW + 1) == {"isAuthorized": False}


def test_authorizer_denies_a_well_formed_key_never_issued(
    store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued
    never_issued = "sgw_" + "0" * 12 + "_" + "A" * 43
    # Same key id as a real key, other secret: the hash decides, not the id.
    forged_secret = f"sgw_{key_id}_" + ("B" * 43 if not key.endswith("B" * 43) else "C" * 43)

    for token in (never_issued, forged_secret):
        assert authorize(event_with(f"Bearer {token}"), store, NOW) == {"isAuthorized": False}


def _malformed(key: str) -> list[str]:
    secret = key.split("_", 2)[2]
    return [
        "sk_" + key.removeprefix("sgw_"),  # wrong prefix
        "SGW_" + key.removeprefix("sgw_"),  # prefix is case-sensitive
        key[:-1],  # short
        key + "A",  # extra character
        key + " extra",  # extra word
        key.replace("sgw_", "sgw_x", 1),  # id too long
        key[:4] + key[4:16].upper() + key[16:],  # id not lower-case hex
        key.replace(secret, secret[:-1] + "!"),  # not base64url
        key.replace("_", "-"),  # no separators
        f"{key},{key}",  # two keys
        "sgw_",
        "",
    ]


def test_authorizer_denies_malformed_keys(store: DynamoDBTenantStore, issued: tuple[str, str]) -> None:
    _, key = issued
    for token in _malformed(key):
        assert authorize(event_with(f"Bearer {token}"), store, NOW) == {"isAuthorized": False}, token


def test_authorizer_denies_a_request_without_the_header(
    store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    _, key = issued
    assert authorize(event_with(None), store, NOW) == {"isAuthorized": False}
    # The key anywhere but the Authorization header is no key.
    elsewhere = event_with(None)
    elsewhere["headers"]["x-api-key"] = key
    elsewhere["queryStringParameters"] = {"api_key": key}
    assert authorize(elsewhere, store, NOW) == {"isAuthorized": False}
    assert authorize({}, store, NOW) == {"isAuthorized": False}
    assert authorize({"headers": None}, store, NOW) == {"isAuthorized": False}


def test_authorizer_denies_a_wrong_scheme(store: DynamoDBTenantStore, issued: tuple[str, str]) -> None:
    _, key = issued
    for authorization in (
        "Basic dXNlcjpwYXNz",
        f"Basic {key}",
        f"Token {key}",
        f"Bearer: {key}",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        key,  # the key without a scheme
        f"Bearer{key}",
    ):
        assert authorize(event_with(authorization), store, NOW) == {"isAuthorized": False}, authorization


def test_authorizer_keeps_denying_once_a_key_is_revoked_even_if_another_is_created(
    store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued
    store.revoke_key(key_id)
    _, other = store.create_key("acme", "second", SCOPES, NOW)

    assert authorize(event_with(f"Bearer {key}"), store, NOW)["isAuthorized"] is False
    assert authorize(event_with(f"Bearer {other}"), store, NOW)["isAuthorized"] is True


def test_the_table_stores_the_keys_hash_never_the_key(table: Any, store: DynamoDBTenantStore) -> None:
    keys = [store.create_key(f"tenant-{i}", f"k{i}", SCOPES, NOW)[1] for i in range(3)]
    for key in keys:
        authorize(event_with(f"Bearer {key}"), store, NOW)  # a use writes last_used_at too

    items = table.scan()["Items"]
    dumped = json.dumps(items, default=str)
    key_items = [i for i in items if i["sk"] == "APIKEY"]
    assert len(key_items) == 3
    for key in keys:
        secret = key.split("_", 2)[2]
        assert key not in dumped and secret not in dumped
        assert hashlib.sha256(key.encode()).hexdigest() in {i["key_hash"] for i in key_items}
    for listed in store.list_keys():
        assert all(key not in repr(listed) for key in keys)


def test_last_used_at_is_set_on_first_use_and_not_rewritten_within_the_hour(
    table: Any, store: DynamoDBTenantStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued

    def last_used() -> int | None:
        item = table.get_item(Key={"pk": f"APIKEY#{key_id}", "sk": "APIKEY"})["Item"]
        return int(item["last_used_at"]) if "last_used_at" in item else None

    assert last_used() is None
    authorize(event_with(f"Bearer {key}"), store, NOW)
    assert last_used() == NOW

    authorize(event_with(f"Bearer {key}"), store, NOW + 60)
    authorize(event_with(f"Bearer {key}"), store, NOW + TOUCH_EVERY_SECONDS - 1)
    assert last_used() == NOW

    authorize(event_with(f"Bearer {key}"), store, NOW + TOUCH_EVERY_SECONDS)
    assert last_used() == NOW + TOUCH_EVERY_SECONDS


def test_a_denied_key_is_not_touched(table: Any, store: DynamoDBTenantStore, issued: tuple[str, str]) -> None:
    key_id, key = issued
    store.revoke_key(key_id)
    authorize(event_with(f"Bearer {key}"), store, NOW)
    item = table.get_item(Key={"pk": f"APIKEY#{key_id}", "sk": "APIKEY"})["Item"]
    assert "last_used_at" not in item


# --- functions/authorizer/app.py ---------------------------------------------------------------
@pytest.fixture
def authorizer_function(table: Any) -> Iterator[Any]:
    wiring.reset()  # the store is built afresh inside moto's mock
    yield load_handler_module("authorizer").lambda_handler
    wiring.reset()


def test_authorizer_function_allows_a_valid_key_and_denies_the_rest(
    store: DynamoDBTenantStore, authorizer_function: Any
) -> None:
    record, key = store.create_key("acme", "ci", SCOPES, int(time.time()))

    allowed = authorizer_function(event_with(f"Bearer {key}"), FakeLambdaContext())
    assert allowed == {
        "isAuthorized": True,
        "context": {"tenant_id": "acme", "key_id": record.key_id, "scopes": ",".join(SCOPES), "quotas": "{}"},
    }
    for authorization in (None, "Basic dXNlcjpwYXNz", "Bearer", f"Bearer {key}x", key):
        denied = authorizer_function(event_with(authorization), FakeLambdaContext())
        assert denied == {"isAuthorized": False}, authorization

    store.revoke_key(record.key_id)
    assert authorizer_function(event_with(f"Bearer {key}"), FakeLambdaContext()) == {"isAuthorized": False}


def test_authorizer_function_never_logs_the_key(
    store: DynamoDBTenantStore, authorizer_function: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Powertools' handler holds the stream it was given at import (pytest's, not capsys'): read
    # the JSON lines through a handler of our own with the same formatter, and caplog's records.
    _, key = store.create_key("acme", "ci", SCOPES, int(time.time()))
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.log_level
    logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG, logger=logger.name)  # ours: botocore's DEBUG dumps bodies
    try:
        authorizer_function(event_with(f"Bearer {key}"), FakeLambdaContext())
        authorizer_function(event_with(f"Bearer {key}x"), FakeLambdaContext())
        logger.debug("probe: the logger writes here")
    finally:
        logger.setLevel(level)
        logger._logger.removeHandler(handler)

    output = lines.getvalue() + caplog.text + repr([r.__dict__ for r in caplog.records])
    assert "probe: the logger writes here" in lines.getvalue()  # the capture sees the logs
    secret = key.split("_", 2)[2]
    assert secret not in output
    assert hashlib.sha256(key.encode()).hexdigest() not in output


def test_authorizer_fails_closed_when_the_key_store_is_unreachable(table: Any) -> None:
    """No table (or DynamoDB down): an error, which API Gateway answers 500, never an allow."""
    missing = DynamoDBTenantStore(boto3.resource("dynamodb").Table("no-such-table"))
    key = "sgw_" + "0" * 12 + "_" + "A" * 43

    with pytest.raises(StorageUnavailable):
        authorize(event_with(f"Bearer {key}"), missing, NOW)
