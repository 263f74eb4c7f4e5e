"""The live-session quota under a race: 20 simultaneous creates for one tenant whose limit is 5.

The counter moves in the same DynamoDB transaction that writes the session (adapters/dynamodb.py
put_new), so exactly 5 pass whatever the interleaving. Each thread is its own warm "container"
(own boto3 resource, repository and service), all against one moto server: in-process mock_aws is
not thread-safe. The HTTP answers (429, Retry-After) are checked through the handler afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from sandbox_gateway import wiring
from sandbox_gateway.adapters.dynamodb import QUOTA_RETRY_AFTER_SECONDS, DynamoDBSessionRepository
from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.api.errors import status_for
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.models.errors import DomainError, ProviderUnavailable, QuotaExceeded, StorageUnavailable
from sandbox_gateway.models.session import Session
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.reaper import ReaperService
from sandbox_gateway.services.sessions import SessionService
from sandbox_gateway.services.tenants import TenantLedger, default_quotas

from local.stack import TABLE_NAME, dynamodb_server
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke

CALLERS = 20
LIMIT = 5
ROUNDS = 4
BODY: dict[str, Any] = {
    "agent": "a",
    "environment": "e2b-python",
    "provider": "e2b",
    "metadata": {},
    "envs": {},
    "timeout_seconds": None,
}
CATALOGUE = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, {Provider.E2B}))


@pytest.fixture(scope="module")
def dynamodb_url() -> Iterator[str]:
    with dynamodb_server() as url:
        yield url


def container(url: str, fake: FakeSandboxProvider) -> SessionService:
    """One warm Lambda container: its own clients, repository, ledger and service."""
    table = boto3.resource("dynamodb", endpoint_url=url).Table(TABLE_NAME)
    settings = Settings()
    ledger = TenantLedger(DynamoDBTenantStore(table), default_quotas(settings))
    return SessionService(
        DynamoDBSessionRepository(table), lambda _: fake, CATALOGUE, settings, ledger=ledger
    )


def create_at_once(
    url: str, tenant: str, fake: FakeSandboxProvider, callers: int
) -> list[Session | DomainError]:
    services = [container(url, fake) for _ in range(callers)]
    start = threading.Barrier(callers)
    answers: list[Session | DomainError] = []

    def caller(service: SessionService) -> None:
        start.wait()
        try:
            answers.append(service.create(tenant, **BODY))
        except DomainError as exc:
            answers.append(exc)

    threads = [threading.Thread(target=caller, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == callers
    return answers


def split(answers: list[Session | DomainError]) -> tuple[list[Session], list[DomainError]]:
    return [a for a in answers if isinstance(a, Session)], [a for a in answers if not isinstance(a, Session)]


def assert_quota_refusals(refused: list[DomainError]) -> None:
    for error in refused:
        assert type(error) is QuotaExceeded, repr(error)
        assert error.code == "quota_exceeded" and int(status_for(error)) == 429
        assert error.retry_after_seconds == QUOTA_RETRY_AFTER_SECONDS
        assert "max_active_sessions" in str(error)


def table_of(url: str) -> Any:
    return boto3.resource("dynamodb", endpoint_url=url).Table(TABLE_NAME)


def live_sessions(url: str, tenant: str) -> list[dict[str, Any]]:
    # Each session is its own partition now: a consistent scan, not the (eventually consistent) index.
    items = table_of(url).scan(
        FilterExpression="sk = :session AND tenant_id = :tenant",
        ExpressionAttributeValues={":session": "SESSION", ":tenant": tenant},
        ConsistentRead=True,
    )["Items"]
    return [i for i in items if i["status"] in ("creating", "active")]


def counter(url: str, tenant: str) -> int:
    return DynamoDBTenantStore(table_of(url)).active_sessions(tenant)


@pytest.fixture
def handlers_on(dynamodb_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSandboxProvider]:
    """The real handlers, wired to the moto server's table and a fake E2B."""
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_url)
    fake = FakeSandboxProvider()
    wiring.reset()
    wiring.override(Provider.E2B, fake)
    yield fake
    wiring.reset()


def http_create(tenant: str) -> dict[str, Any]:
    return invoke("sessions", with_tenant(load_event("sessions_create"), tenant))


def test_twenty_simultaneous_creates_at_a_limit_of_five_start_exactly_five(
    dynamodb_url: str, handlers_on: FakeSandboxProvider
) -> None:
    results = []
    for attempt in range(ROUNDS):  # the race is narrow: several rounds, each with a fresh tenant
        tenant = f"tenant-quota-{attempt}-{time.time_ns()}"
        store = DynamoDBTenantStore(table_of(dynamodb_url))
        store.set_quota_overrides(tenant, {"max_active_sessions": LIMIT})
        fake = FakeSandboxProvider()

        created, refused = split(create_at_once(dynamodb_url, tenant, fake, CALLERS))

        assert len(created) == LIMIT, f"round {attempt}: {len(created)} created, {refused}"
        assert len(refused) == CALLERS - LIMIT
        assert_quota_refusals(refused)
        assert len(fake.sandboxes) == LIMIT  # a refused create starts no sandbox
        assert {s["session_id"] for s in live_sessions(dynamodb_url, tenant)} == {
            s.session_id for s in created
        }
        assert counter(dynamodb_url, tenant) == LIMIT
        results.append((len(created), len(refused)))

        # Through the handler: the 21st is a 429 with Retry-After, naming the limit.
        answer = http_create(tenant)
        assert answer["statusCode"] == 429, answer["body"]
        assert answer["headers"]["Retry-After"] == str(QUOTA_RETRY_AFTER_SECONDS)
        error = json.loads(answer["body"])["error"]
        assert error["code"] == "quota_exceeded" and "max_active_sessions" in error["message"]

        # Close 2: exactly 2 of 3 simultaneous creates pass.
        for session in created[:2]:
            closed = invoke(
                "sessions", with_tenant(load_event("sessions_delete", session.session_id), tenant)
            )
            assert closed["statusCode"] == 200
        assert counter(dynamodb_url, tenant) == LIMIT - 2
        more, refused_again = split(create_at_once(dynamodb_url, tenant, fake, 3))
        assert (len(more), len(refused_again)) == (2, 1), refused_again
        assert_quota_refusals(refused_again)
        assert counter(dynamodb_url, tenant) == len(live_sessions(dynamodb_url, tenant)) == LIMIT

        # The reaper ending an expired session frees its slot, once.
        victim = more[0]
        table_of(dynamodb_url).update_item(
            Key=session_key(victim.session_id),
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": int(time.time()) - 5},
        )
        reaper = ReaperService(DynamoDBSessionRepository(table_of(dynamodb_url)), lambda _, fake=fake: fake)  # type: ignore[misc]
        assert reaper.sweep().expired == 1
        reaper.sweep()  # a second sweep must not free it again
        assert counter(dynamodb_url, tenant) == len(live_sessions(dynamodb_url, tenant)) == LIMIT - 1
        assert http_create(tenant)["statusCode"] == 201
        assert http_create(tenant)["statusCode"] == 429
        assert counter(dynamodb_url, tenant) == len(live_sessions(dynamodb_url, tenant)) == LIMIT

    assert results == [(LIMIT, CALLERS - LIMIT)] * ROUNDS
    print(f"\nquota race: {ROUNDS} rounds of {CALLERS} creates at a limit of {LIMIT}: {results}")


def test_the_race_is_per_tenant(dynamodb_url: str) -> None:
    """Two tenants racing at once each get their own limit: one tenant's creates never use another's."""
    store = DynamoDBTenantStore(table_of(dynamodb_url))
    tenants = [f"tenant-pair-{i}-{time.time_ns()}" for i in range(2)]
    for tenant in tenants:
        store.set_quota_overrides(tenant, {"max_active_sessions": 3})
    fake = FakeSandboxProvider()
    answers: dict[str, list[Session | DomainError]] = {}
    threads = [
        threading.Thread(target=lambda t=t: answers.__setitem__(t, create_at_once(dynamodb_url, t, fake, 10)))
        for t in tenants
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for tenant in tenants:
        created, refused = split(answers[tenant])
        assert (len(created), len(refused)) == (3, 7)
        assert_quota_refusals(refused)
        assert {s.tenant_id for s in created} == {tenant}
        assert counter(dynamodb_url, tenant) == len(live_sessions(dynamodb_url, tenant)) == 3


# --- the other ceilings: a request that names no value gets the tenant's ceiling, not a refusal --
def tenant_with(url: str, **overrides: int) -> str:
    tenant = f"tenant-ceiling-{time.time_ns()}"
    DynamoDBTenantStore(table_of(url)).set_quota_overrides(tenant, overrides)
    return tenant


def test_a_create_without_timeout_gets_the_tenants_lifetime_ceiling(
    dynamodb_url: str, handlers_on: FakeSandboxProvider
) -> None:
    """Found: the deployment's default lifetime (900 s) was checked against the tenant's ceiling,
    so a tenant with max_session_seconds 600 could not create a session without naming a timeout
    (429). The default is now clamped to the ceiling; an explicit value over it is still a 429."""
    tenant = tenant_with(dynamodb_url, max_session_seconds=600)

    created = http_create(tenant)
    assert created["statusCode"] == 201, created["body"]
    session = json.loads(created["body"])
    (sandbox,) = handlers_on.sandboxes.values()
    assert sandbox.timeout_seconds == 600

    over = invoke("sessions", with_tenant(load_event("sessions_create", timeout_seconds=601), tenant))
    assert over["statusCode"] == 429 and "max_session_seconds" in json.loads(over["body"])["error"]["message"]

    # Keep-alive without a timeout: extended by the ceiling, not refused.
    event = with_tenant(load_event("sessions_keepalive", session["session_id"]), tenant)
    event["body"] = "{}"
    kept = invoke("sessions", event)
    assert kept["statusCode"] == 200, kept["body"]
    assert sandbox.timeout_seconds == 600


def test_an_execute_without_timeout_is_held_to_the_tenants_ceiling(
    dynamodb_url: str, handlers_on: FakeSandboxProvider
) -> None:
    """Found: timeout_seconds was checked against max_execution_seconds only when given, so leaving
    it out ran the code for the deployment's default (20 s) past a tenant ceiling of 5 s."""
    tenant = tenant_with(dynamodb_url, max_execution_seconds=5)
    session_id = json.loads(http_create(tenant)["body"])["session_id"]

    ran = invoke("execute", with_tenant(load_event("execute_python", session_id), tenant))
    assert ran["statusCode"] == 200, ran["body"]
    (sandbox,) = handlers_on.sandboxes.values()
    assert sandbox.runs[-1].timeout_seconds == 5

    over = invoke("execute", with_tenant(load_event("execute_python", session_id, timeout_seconds=6), tenant))
    assert over["statusCode"] == 429
    assert "max_execution_seconds" in json.loads(over["body"])["error"]["message"]


# --- DynamoDB's transaction conflicts ---------------------------------------------------------
def conflict() -> ClientError:
    """What DynamoDB answers a transaction that touched an item another transaction was writing
    (here: the tenant's counter item, which every create and end of that tenant writes)."""
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}, {"Code": "None"}],
        },
        "TransactWriteItems",
    )


def conflicting(service: SessionService, conflicts: int) -> list[int]:
    """Make the service's next `conflicts` transactions fail as DynamoDB does under a race;
    the list counts the transactions attempted."""
    client = service._repository._table.meta.client  # type: ignore[attr-defined]
    real = client.transact_write_items
    attempts = [0]

    def transact_write_items(**kwargs: Any) -> Any:
        attempts[0] += 1
        if attempts[0] <= conflicts:
            raise conflict()
        return real(**kwargs)

    client.transact_write_items = transact_write_items
    return attempts


def test_a_transaction_conflict_is_retried_not_a_503(dynamodb_url: str) -> None:
    """Moto runs one request at a time, so it never produces what real DynamoDB does when
    simultaneous creates of one tenant all write its counter item: TransactionCanceledException
    with reason TransactionConflict. Found: that surfaced as 503 storage busy (fewer sessions than
    the quota allows under a race, and a close that did not close); now retried with backoff."""
    tenant = f"tenant-conflict-{time.time_ns()}"
    DynamoDBTenantStore(table_of(dynamodb_url)).set_quota_overrides(tenant, {"max_active_sessions": 1})
    fake = FakeSandboxProvider()
    service = container(dynamodb_url, fake)

    attempts = conflicting(service, 2)
    session = service.create(tenant, **BODY)
    assert attempts[0] == 3  # two conflicts, then the create's transaction
    assert counter(dynamodb_url, tenant) == 1

    attempts = conflicting(service, 2)
    with pytest.raises(QuotaExceeded):  # a condition failure is an answer, not retried
        service.create(tenant, **BODY)
    assert attempts[0] == 3

    attempts = conflicting(service, 2)
    assert service.close(tenant, session.session_id).status.value == "closed"
    assert attempts[0] == 3
    assert counter(dynamodb_url, tenant) == 0

    # Conflicts that do not stop: still a 503 in the end, after a bounded number of tries.
    attempts = conflicting(service, 1000)
    with pytest.raises(StorageUnavailable):
        service.create(tenant, **BODY)
    assert 2 <= attempts[0] <= 10


# --- every way a session ends gives its slot back once; replays take none ---------------------
def test_a_failed_create_and_an_idempotent_replay_leave_the_counter_right(
    dynamodb_url: str, handlers_on: FakeSandboxProvider
) -> None:
    tenant = tenant_with(dynamodb_url, max_active_sessions=2)

    handlers_on.fail_create = ProviderUnavailable("E2B could not be reached")
    assert http_create(tenant)["statusCode"] == 503
    assert counter(dynamodb_url, tenant) == 0  # the failed session gave its slot back

    event = with_tenant(load_event("sessions_create_idempotent"), tenant)
    event["headers"]["idempotency-key"] = f"replay-{time.time_ns()}"
    first = invoke("sessions", event)
    replay = invoke("sessions", event)
    assert first["statusCode"] == replay["statusCode"] == 201
    assert json.loads(first["body"])["session_id"] == json.loads(replay["body"])["session_id"]
    assert counter(dynamodb_url, tenant) == 1

    second = json.loads(http_create(tenant)["body"])["session_id"]
    assert http_create(tenant)["statusCode"] == 429
    # A session lost behind our back fails: its slot comes back.
    sandbox_id = next(i for i, s in handlers_on.sandboxes.items() if s.spec.session_id == second)
    handlers_on.lose(sandbox_id)
    lost = invoke("execute", with_tenant(load_event("execute_python", second), tenant))
    assert lost["statusCode"] == 410
    assert counter(dynamodb_url, tenant) == len(live_sessions(dynamodb_url, tenant)) == 1
    assert http_create(tenant)["statusCode"] == 201
