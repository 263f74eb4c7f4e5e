"""The live-session quota under a race over real HTTP: 20 simultaneous POST /api/sessions for a
fresh tenant whose limit is 5, through the local gateway, its Lambda authorizer and the functions'
worker processes, against one moto server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.models.tenant import SCOPES

from local.stack import Stack, tenant_store

CALLERS = 20
LIMIT = 5
ROUNDS = 2


@pytest.fixture
def quota_tenant(stack: Stack) -> Iterator[tuple[str, str, DynamoDBTenantStore]]:
    """A tenant of its own (other tests' sessions do not count) with max_active_sessions 5."""
    store = tenant_store(stack.dynamodb_url)
    tenant = f"quota-race-{time.time_ns()}"
    _, key = store.create_key(tenant, "quota-race", SCOPES, int(time.time()))
    store.set_quota_overrides(tenant, {"max_active_sessions": LIMIT})
    try:
        yield tenant, key, store
    finally:
        close_all(stack, key)


def session_for(key: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return http


def close_all(stack: Stack, key: str) -> None:
    http = session_for(key)
    listed = http.get(f"{stack.url}/api/sessions", params={"limit": 100}, timeout=60).json()["sessions"]
    for session in listed:
        if session["status"] in ("creating", "active"):
            http.delete(f"{stack.url}/api/sessions/{session['session_id']}", timeout=60)


def create_at_once(stack: Stack, key: str, callers: int) -> list[requests.Response]:
    start = threading.Barrier(callers)
    answers: list[requests.Response] = []

    def caller() -> None:
        http = session_for(key)  # its own connection
        start.wait()
        answers.append(http.post(f"{stack.url}/api/sessions", json={"environment": "e2b-python"}, timeout=90))

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == callers
    return answers


def live(stack: Stack, key: str) -> set[str]:
    listed = session_for(key).get(f"{stack.url}/api/sessions", params={"limit": 100}, timeout=60)
    return {s["session_id"] for s in listed.json()["sessions"] if s["status"] in ("creating", "active")}


def assert_refusals(refused: list[requests.Response]) -> None:
    for answer in refused:
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "quota_exceeded"
        assert "max_active_sessions" in answer.json()["error"]["message"]
        assert int(answer.headers["Retry-After"]) > 0


def test_twenty_simultaneous_creates_at_a_limit_of_five_over_http(
    stack: Stack, quota_tenant: tuple[str, str, DynamoDBTenantStore]
) -> None:
    tenant, key, store = quota_tenant
    results: list[tuple[int, int]] = []
    for attempt in range(ROUNDS):
        answers = create_at_once(stack, key, CALLERS)
        created = [a for a in answers if a.status_code == 201]
        refused = [a for a in answers if a.status_code != 201]

        assert len(created) == LIMIT, f"round {attempt}: {[a.status_code for a in answers]}"
        assert_refusals(refused)
        assert live(stack, key) == {a.json()["session_id"] for a in created}
        assert store.active_sessions(tenant) == LIMIT
        results.append((len(created), len(refused)))

        # Close 2: two more pass, the third is refused.
        http = session_for(key)
        for answer in created[:2]:
            closed = http.delete(f"{stack.url}/api/sessions/{answer.json()['session_id']}", timeout=60)
            assert closed.status_code == 200
        more = create_at_once(stack, key, 3)
        assert sorted(a.status_code for a in more) == [201, 201, 429]
        assert_refusals([a for a in more if a.status_code != 201])
        assert store.active_sessions(tenant) == len(live(stack, key)) == LIMIT

        usage: dict[str, Any] = http.get(f"{stack.url}/api/usage", timeout=60).json()
        assert usage["active_sessions"] == LIMIT and usage["quotas"]["max_active_sessions"] == LIMIT
        close_all(stack, key)
        assert store.active_sessions(tenant) == 0

    assert results == [(LIMIT, CALLERS - LIMIT)] * ROUNDS
    print(f"\nquota race over HTTP: {ROUNDS} rounds of {CALLERS} creates at a limit of {LIMIT}: {results}")
