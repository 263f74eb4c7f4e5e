"""The local stack's dev key: `create_key` stores a key given in advance (SGW_DEV_API_KEY) as it
would a new one, and refuses one that is malformed or whose id is taken."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.tenant import SCOPES, KeyStatus

from local.stack import DEV_KEY_FORMAT
from tests.support.aws import create_sessions_table

GIVEN = "sgw_0123456789ab_" + "A" * 21 + "-_" + "z" * 20


@pytest.fixture
def store() -> Iterator[DynamoDBTenantStore]:
    with mock_aws():
        yield DynamoDBTenantStore(create_sessions_table(boto3.resource("dynamodb"), os.environ["TABLE_NAME"]))


def test_a_given_key_is_stored_and_found_as_a_new_one_would_be(store: DynamoDBTenantStore) -> None:
    record, key = store.create_key("dev", "make-dev", SCOPES, 1_700_000_000, key=GIVEN)

    assert key == GIVEN
    assert (record.key_id, record.tenant_id, record.scopes) == ("0123456789ab", "dev", SCOPES)
    found = store.find_key(GIVEN)
    assert found is not None
    assert (found.key_id, found.tenant_id, found.status) == ("0123456789ab", "dev", KeyStatus.ACTIVE)
    assert store.find_key(GIVEN[:-1] + "y") is None  # same id, another secret


def test_without_a_given_key_each_create_makes_a_new_well_formed_one(store: DynamoDBTenantStore) -> None:
    _, first = store.create_key("dev", "a", SCOPES, 1)
    _, second = store.create_key("dev", "b", SCOPES, 1)

    assert first != second
    assert DEV_KEY_FORMAT.fullmatch(first) and DEV_KEY_FORMAT.fullmatch(second)


@pytest.mark.parametrize(
    "malformed",
    ["", "sgw_0123456789ab_short", GIVEN.upper(), GIVEN + "x", GIVEN.replace("sgw_", "sk_"), " " + GIVEN],
)
def test_a_malformed_given_key_is_refused_before_anything_is_stored(
    store: DynamoDBTenantStore, malformed: str
) -> None:
    with pytest.raises(ValueError, match="sgw_"):
        store.create_key("dev", "make-dev", SCOPES, 1, key=malformed)

    assert store.list_keys() == []


def test_a_given_key_whose_id_is_taken_never_overwrites_the_stored_one(store: DynamoDBTenantStore) -> None:
    store.create_key("acme", "first", ["sessions"], 1, key=GIVEN)
    other_secret = GIVEN[:-1] + "y"

    with pytest.raises(StorageUnavailable):
        store.create_key("dev", "make-dev", SCOPES, 2, key=other_secret)

    found = store.find_key(GIVEN)
    assert found is not None and found.tenant_id == "acme"
    assert store.find_key(other_secret) is None
