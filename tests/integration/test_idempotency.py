"""Idempotency-Key on session create: a retry gets the first answer, never a second sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_gateway.models.errors import ProviderUnavailable

from tests.integration.conftest import body_of
from tests.integration.test_handlers import assert_error
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke


def create(key: str | None = "c0ffee-create-42", tenant: str | None = None, **body: Any) -> dict:
    event = load_event("sessions_create_idempotent", **body)
    if key is None:
        del event["headers"]["idempotency-key"]
    else:
        event["headers"]["idempotency-key"] = key
    return invoke("sessions", with_tenant(event, tenant) if tenant else event)


def test_a_retried_create_returns_the_first_session(provider: FakeSandboxProvider) -> None:
    first, again = create(), create()

    assert first["statusCode"] == again["statusCode"] == 201
    assert body_of(first) == body_of(again)
    assert len(provider.sandboxes) == 1


def test_without_a_key_every_create_is_new(provider: FakeSandboxProvider) -> None:
    create(key=None), create(key=None)
    assert len(provider.sandboxes) == 2


def test_the_same_key_with_another_body_is_422(provider: FakeSandboxProvider) -> None:
    create()
    assert_error(create(metadata={"other": "body"}), 422, "idempotency_key_reused")
    assert len(provider.sandboxes) == 1


def test_keys_are_scoped_by_tenant(provider: FakeSandboxProvider) -> None:
    ours, theirs = create(tenant="tenant-a"), create(tenant="tenant-b")
    assert body_of(ours)["session_id"] != body_of(theirs)["session_id"]
    assert len(provider.sandboxes) == 2


def test_a_key_still_in_flight_is_409_with_retry_after(provider: FakeSandboxProvider) -> None:
    inner: dict[str, dict] = {}
    provider.during_create = lambda: inner.update(response=create())

    assert create()["statusCode"] == 201
    assert_error(inner["response"], 409, "idempotency_key_in_use")
    assert inner["response"]["headers"]["Retry-After"] == "1"


def test_a_failed_create_is_not_remembered(provider: FakeSandboxProvider) -> None:
    provider.fail_create = ProviderUnavailable("E2B could not be reached")
    assert_error(create(), 503, "provider_unavailable")
    assert create()["statusCode"] == 201


@pytest.mark.parametrize("key", ["has space", "x" * 129, "naïve"])
def test_malformed_keys_are_400(provider: FakeSandboxProvider, key: str) -> None:
    assert_error(create(key=key), 400, "invalid_request")
    assert provider.sandboxes == {}


def test_each_key_is_its_own_partition(provider: FakeSandboxProvider, table: Any) -> None:
    # Not one static partition that every keyed request of every tenant writes (decision 0008).
    create(key="key-one"), create(key="key-two")
    items = [i for i in table.scan()["Items"] if i["sk"] == "IDEMPOTENCY"]
    assert len(items) == 2
    assert len({i["pk"] for i in items}) == 2
    assert all(i["pk"].startswith("IDEMPOTENCY#create-session#") for i in items)
    assert create(key="key-one")["statusCode"] == 201  # a replay finds its record by that key
    assert len(provider.sandboxes) == 2
