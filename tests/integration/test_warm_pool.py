"""The warm pool (issue 11, part 5): its store over moto, the service with the fake provider, and
session create through the real handlers binding a pooled sandbox instead of booting one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sandbox_gateway import wiring
from sandbox_gateway.adapters.pool_store import DynamoDBSandboxPool
from sandbox_gateway.adapters.table_layout import session_key, tenant_key
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.models.errors import SandboxGone
from sandbox_gateway.models.session import Session, SessionStatus
from sandbox_gateway.ports import PooledSandbox, SandboxSpec
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.pool import BOOT_MARGIN_SECONDS, WarmPool

from local.stack import TABLE_NAME, dynamodb_server
from tests.integration.conftest import Api, body_of
from tests.support.clock import Clock
from tests.support.events import load_event, with_authorized_quotas
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke

NOW = 1_800_000_000.0
PYTHON = next(env for env in BUILT_IN_ENVIRONMENTS if env.name == "e2b-python")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def store(table: Any, clock: Clock) -> DynamoDBSandboxPool:
    return DynamoDBSandboxPool(table, clock)


def entry(sandbox_id: str, booted_at: float = NOW, lifetime: int = 1000) -> PooledSandbox:
    return PooledSandbox(
        "e2b-python", sandbox_id, booted_at, int(booted_at) + lifetime, f"sealed-{sandbox_id}"
    )


def pool_of(store: DynamoDBSandboxPool, fake: FakeSandboxProvider, clock: Clock, size: int = 2) -> WarmPool:
    catalogue = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, [Provider.E2B]))
    return WarmPool(
        store, lambda provider: fake, catalogue, sizes={"e2b-python": size}, max_age_seconds=600, clock=clock
    )


def spec(session_id: str = "ses_1", envs: dict[str, str] | None = None) -> SandboxSpec:
    return SandboxSpec(session_id, "tenant-a", PYTHON, 300, envs=envs or {})


# --- the store ------------------------------------------------------------------------------
def test_a_claim_takes_the_oldest_entry_once(store: DynamoDBSandboxPool) -> None:
    store.add(entry("sbx-new", booted_at=NOW + 5))
    store.add(entry("sbx-old", booted_at=NOW))
    claimed = store.claim("e2b-python")
    assert claimed == entry("sbx-old")
    assert [e.sandbox_id for e in store.entries("e2b-python")] == ["sbx-new"]
    assert store.remove(claimed) is False  # gone: a retire after the claim does nothing
    assert store.claim("e2b-node") is None


@pytest.mark.parametrize("booted_at", [1_795_740_491.736, 1_795_740_491.7366, NOW])
def test_an_entry_booted_at_any_instant_can_be_claimed(store: DynamoDBSandboxPool, booted_at: float) -> None:
    """Its key is made from the boot time twice, before and after a trip through the table: a
    float that comes back as ….7359999 must not name another item (found in the e2e test)."""
    store.add(entry("sbx-1", booted_at=booted_at, lifetime=100_000_000))
    assert store.claim("e2b-python") is not None


def test_a_claim_skips_a_sandbox_about_to_end(store: DynamoDBSandboxPool) -> None:
    store.add(entry("sbx-ending", lifetime=30))
    assert store.claim("e2b-python") is None
    assert [e.sandbox_id for e in store.entries("e2b-python")] == ["sbx-ending"]  # the refill retires it


def test_concurrent_claims_never_share_a_sandbox() -> None:
    """Ten creates at once, each its own "container" (own client), against the moto server, whose
    conditional writes are atomic as DynamoDB's are (in-process mock_aws is not thread-safe)."""
    with dynamodb_server() as url:
        pool = DynamoDBSandboxPool(boto3.resource("dynamodb", endpoint_url=url).Table(TABLE_NAME), Clock(NOW))
        for number in range(6):
            pool.add(entry(f"sbx-{number}", booted_at=NOW + number))
        claimed: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(10)

        def claim() -> None:
            table = boto3.resource("dynamodb", endpoint_url=url).Table(TABLE_NAME)
            start.wait()
            got = DynamoDBSandboxPool(table, Clock(NOW)).claim("e2b-python")
            if got is not None:
                with lock:
                    claimed.append(got.sandbox_id)

        threads = [threading.Thread(target=claim) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claimed) == [f"sbx-{number}" for number in range(6)]
        assert pool.entries("e2b-python") == []


# --- the service ----------------------------------------------------------------------------
def test_refill_boots_to_size_and_a_claim_binds_one(store: DynamoDBSandboxPool, clock: Clock) -> None:
    fake = FakeSandboxProvider()
    pool = pool_of(store, fake, clock)
    assert pool.refill(deadline=NOW + 50).booted == 2
    assert pool.refill(deadline=NOW + 50).booted == 0  # full: nothing more
    pooled_ids = {created.sandbox_id for created in fake.booted}

    bound = pool.claim(spec("ses_a"))
    assert bound is not None and bound.sandbox_id in pooled_ids
    # The access sealed at boot stays the sandbox's: binding reseals nothing.
    assert bound.access == {created.sandbox_id: created.access for created in fake.booted}[bound.sandbox_id]
    assert fake.sandboxes[bound.sandbox_id].spec.session_id == "ses_a"
    assert len(store.entries("e2b-python")) == 1
    assert pool.refill(deadline=NOW + 50).booted == 1


def test_refill_retires_stale_sandboxes(store: DynamoDBSandboxPool, clock: Clock) -> None:
    fake = FakeSandboxProvider()
    pool = pool_of(store, fake, clock, size=1)
    pool.refill(deadline=NOW + 50)
    (old,) = fake.booted
    clock.now += 601
    report = pool.refill(deadline=clock.now + 50)
    assert (report.retired, report.booted) == (1, 1)
    assert fake.killed == [old.sandbox_id]
    assert [e.sandbox_id for e in store.entries("e2b-python")] != [old.sandbox_id]


def test_refill_stops_at_its_deadline(store: DynamoDBSandboxPool, clock: Clock) -> None:
    fake = FakeSandboxProvider()
    assert pool_of(store, fake, clock).refill(deadline=NOW).booted == 0
    assert fake.booted == []


def test_a_pooled_sandbox_is_booted_to_outlive_its_age(store: DynamoDBSandboxPool, clock: Clock) -> None:
    fake = FakeSandboxProvider()
    pool_of(store, fake, clock, size=1).refill(deadline=NOW + 50)
    (pooled,) = store.entries("e2b-python")
    assert pooled.expires_at == int(NOW) + 600 + BOOT_MARGIN_SECONDS
    assert fake.sandboxes[pooled.sandbox_id].timeout_seconds == 600 + BOOT_MARGIN_SECONDS


def test_envs_never_take_a_pooled_sandbox(store: DynamoDBSandboxPool, clock: Clock) -> None:
    fake = FakeSandboxProvider()
    pool = pool_of(store, fake, clock, size=1)
    pool.refill(deadline=NOW + 50)
    assert pool.claim(spec(envs={"TOKEN": "x"})) is None
    assert len(store.entries("e2b-python")) == 1


def test_a_dead_pooled_sandbox_is_killed_and_the_next_one_bound(
    store: DynamoDBSandboxPool, clock: Clock
) -> None:
    fake = FakeSandboxProvider()
    pool = pool_of(store, fake, clock)
    pool.refill(deadline=NOW + 50)
    first, second = (created.sandbox_id for created in fake.booted)
    fake.fail_bind = SandboxGone("gone")
    bound = pool.claim(spec())
    assert bound is not None and bound.sandbox_id == second
    assert fake.killed == [first]


def test_an_empty_pool_answers_none(store: DynamoDBSandboxPool, clock: Clock) -> None:
    assert pool_of(store, FakeSandboxProvider(), clock).claim(spec()) is None


# --- through the handlers ----------------------------------------------------------------------
@pytest.fixture
def pooled_api(api: Api, monkeypatch: pytest.MonkeyPatch, provider: FakeSandboxProvider) -> Iterator[Api]:
    monkeypatch.setenv("WARM_POOL", "e2b-python=2")
    wiring.reset(keep_overrides=True)
    yield api
    monkeypatch.delenv("WARM_POOL")
    wiring.reset(keep_overrides=True)


def test_create_binds_a_pooled_sandbox_and_the_pool_function_refills(
    pooled_api: Api, provider: FakeSandboxProvider
) -> None:
    assert invoke("pool", {})["booted"] == 2
    created = body_of(pooled_api.call("sessions", "sessions_create"))
    (bound,) = provider.bound
    assert bound in {sandbox.sandbox_id for sandbox in provider.booted}
    assert provider.sandboxes[bound].spec.session_id == created["session_id"]
    ran = body_of(pooled_api.call("execute", "execute_python", created["session_id"]))
    assert ran["status"] == "ok"
    assert invoke("pool", {})["booted"] == 1


def authorized_create() -> dict[str, Any]:
    """POST /api/sessions as after today's authorizer: the quotas (none here) come with its answer."""
    event = load_event("sessions_create")
    with_authorized_quotas(event, {})
    return invoke("sessions", event)


def test_a_pooled_create_makes_two_dynamodb_calls_and_an_empty_pool_three(
    pooled_api: Api, provider: FakeSandboxProvider, dynamodb_calls: list[str]
) -> None:
    def create() -> list[str]:
        dynamodb_calls.clear()
        assert authorized_create()["statusCode"] == 201
        return list(dynamodb_calls)

    assert invoke("pool", {})["booted"] == 2
    # the pool's oldest entries; the session (active, bound) + counter + usage + the claim
    assert create() == ["Query", "TransactWriteItems"]
    assert len(provider.bound) == 1
    create()
    # the empty pool's query; the session + counter + usage; activate once its sandbox booted
    assert create() == ["Query", "TransactWriteItems", "UpdateItem"]
    assert len(provider.bound) == 2 and len(provider.sandboxes) == 3


def test_a_pooled_create_writes_the_session_bound_and_takes_the_entry_in_one_step(
    pooled_api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    invoke("pool", {})
    pool = DynamoDBSandboxPool(table)
    oldest = pool.entries("e2b-python")[0]

    created = body_of(authorized_create())

    assert created["status"] == "active"
    stored = table.get_item(Key=session_key(created["session_id"]))["Item"]
    assert (stored["status"], stored["sandbox_id"]) == ("active", oldest.sandbox_id)
    assert oldest.sandbox_id not in {entry.sandbox_id for entry in pool.entries("e2b-python")}
    assert provider.bound == [oldest.sandbox_id]
    assert body_of(pooled_api.call("execute", "execute_python", created["session_id"]))["status"] == "ok"


def test_over_the_quota_a_pooled_create_takes_nothing_from_the_pool(
    pooled_api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    invoke("pool", {})
    assert authorized_create()["statusCode"] == 201
    before = DynamoDBSandboxPool(table).entries("e2b-python")

    event = load_event("sessions_create")
    with_authorized_quotas(event, {"max_active_sessions": 1})
    refused = invoke("sessions", event)

    assert refused["statusCode"] == 429
    assert DynamoDBSandboxPool(table).entries("e2b-python") == before  # the transaction took nothing
    assert len(provider.bound) == 1


def test_a_pooled_sandbox_that_cannot_be_bound_is_killed_and_replaced(
    pooled_api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    invoke("pool", {})
    first, second = (created.sandbox_id for created in provider.booted)
    provider.fail_bind = SandboxGone("died in the pool")

    created = body_of(authorized_create())

    assert created["status"] == "active"
    assert provider.killed == [first] and provider.bound == [second]
    stored = table.get_item(Key=session_key(created["session_id"]))["Item"]
    assert stored["sandbox_id"] == second  # the session points at the sandbox that runs
    assert DynamoDBSandboxPool(table).entries("e2b-python") == []
    assert body_of(pooled_api.call("execute", "execute_python", created["session_id"]))["status"] == "ok"


def test_a_claim_that_lost_the_race_writes_nothing(repository: Any, table: Any) -> None:
    pool = DynamoDBSandboxPool(table)
    taken = entry("sbx-taken")
    pool.add(taken)
    assert pool.remove(taken)  # another create took it
    session = Session(
        "ses_race",
        "tenant-a",
        "agent",
        "e2b-python",
        Provider.E2B,
        SessionStatus.ACTIVE,
        int(NOW),
        int(NOW) + 300,
        int(NOW),
        sandbox_id="sbx-taken",
    )

    assert repository.put_new(session, None, claiming=taken) is False
    assert "Item" not in table.get_item(Key=session_key("ses_race"))
    assert "Item" not in table.get_item(Key=tenant_key("tenant-a"))  # not counted either


def test_create_without_a_pooled_sandbox_boots_one_as_before(
    pooled_api: Api, provider: FakeSandboxProvider
) -> None:
    created = body_of(pooled_api.call("sessions", "sessions_create"))
    assert created["status"] == "active"
    assert provider.bound == [] and provider.booted == []
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.spec.session_id == created["session_id"]


def test_the_pool_function_does_nothing_without_a_pool(api: Api, provider: FakeSandboxProvider) -> None:
    assert invoke("pool", {}) == {"booted": 0, "retired": 0, "failed": 0}
    assert provider.booted == []
