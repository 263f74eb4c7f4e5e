"""SessionService and ExecutionService with a fake provider and a controllable clock."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import Settings
from sandbox_gateway.deadlines import commit_deadline
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.models.errors import (
    ProviderTimeout,
    ProviderUnavailable,
    SessionBusy,
    SessionClosed,
    SessionExpired,
    StorageUnavailable,
)
from sandbox_gateway.models.session import Session, SessionStatus
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.executions import ExecutionService
from sandbox_gateway.services.sessions import SessionService

from tests.support.clock import Clock
from tests.support.fakes import FakeSandboxProvider


class FailingActivateRepository(DynamoDBSessionRepository):
    """The write after sandbox creation fails (throttling, a network blip)."""

    def activate(
        self, session: Session, sandbox_id: str, now: int, sandbox_access: str | None = None
    ) -> Session | None:
        raise StorageUnavailable("DynamoDB is throttling")


def make_service(
    repository: DynamoDBSessionRepository, provider: FakeSandboxProvider, clock: Clock
) -> SessionService:
    catalogue = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, {Provider.E2B}))
    return SessionService(repository, lambda _: provider, catalogue, Settings(), clock)


@pytest.fixture
def fake() -> FakeSandboxProvider:
    return FakeSandboxProvider()


def create(service: SessionService, **overrides: Any) -> Session:
    request = {
        "agent": "a",
        "environment": "e2b-python",
        "provider": "e2b",
        "timeout_seconds": None,
        "metadata": {},
        "envs": {},
    } | overrides
    return service.create("t1", **request)


def test_failed_write_after_create_kills_the_sandbox(table: Any, fake: FakeSandboxProvider) -> None:
    service = make_service(FailingActivateRepository(table), fake, Clock())

    with pytest.raises(StorageUnavailable):
        create(service)

    assert fake.live_ids == set() and len(fake.killed) == 1


def test_failed_create_marks_the_session_failed_and_leaks_nothing(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    service = make_service(repository, fake, Clock())
    fake.fail_create = ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        create(service)

    (stored,) = repository.list("t1", 10, None).sessions
    assert stored.status == SessionStatus.FAILED and fake.live_ids == set()


def test_session_expires_by_the_clock_even_before_ttl(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    clock = Clock()
    service = make_service(repository, fake, clock)
    session = create(service, timeout_seconds=60)

    clock.now += 59
    assert service.get("t1", session.session_id).status == SessionStatus.ACTIVE
    clock.now += 1
    assert service.get("t1", session.session_id).status == SessionStatus.EXPIRED
    with pytest.raises(SessionExpired):
        service.require_usable("t1", session.session_id)
    assert fake.live_ids == set()  # freed on first access after expiry


def test_keep_alive_moves_expiry_from_now(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    clock = Clock()
    service = make_service(repository, fake, clock)
    session = create(service, timeout_seconds=60)

    clock.now += 50
    extended = service.keep_alive("t1", session.session_id, 300)

    assert extended.expires_at == int(clock.now) + 300
    clock.now += 200
    assert service.get("t1", session.session_id).status == SessionStatus.ACTIVE


def test_two_executions_never_share_a_session_at_once(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    clock = Clock()
    sessions = make_service(repository, fake, clock)
    executions = ExecutionService(sessions, repository, Settings())
    session = create(sessions)
    assert repository.acquire_lease(session, "someone-else", int(clock.now) + 30, int(clock.now))

    with pytest.raises(SessionBusy) as busy:
        executions.execute("t1", session.session_id, code="1", language=None, timeout_seconds=None, envs={})

    assert busy.value.retry_after_seconds == 1
    clock.now += 31  # the other holder's lease lapses
    report = executions.execute(
        "t1", session.session_id, code="1", language=None, timeout_seconds=None, envs={}
    )
    assert report.outcome.stdout == "ran python: 1\n"


def test_delete_while_the_sandbox_starts_ends_closed_and_kills_it(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    service = make_service(repository, fake, Clock())

    def delete_the_creating_session() -> None:
        (creating,) = repository.list("t1", 10, None).sessions
        assert service.close("t1", creating.session_id).status == SessionStatus.CLOSED

    fake.during_create = delete_the_creating_session

    with pytest.raises(SessionClosed) as closed:
        create(service)

    assert type(closed.value) is SessionClosed and closed.value.code == "session_closed"
    (stored,) = repository.list("t1", 10, None).sessions
    assert stored.status == SessionStatus.CLOSED
    assert fake.live_ids == set() and len(fake.killed) == 1


def test_a_create_past_its_commit_deadline_undoes_itself(
    repository: DynamoDBSessionRepository, fake: FakeSandboxProvider
) -> None:
    clock = Clock()
    service = make_service(repository, fake, clock)
    fake.during_create = lambda: setattr(clock, "now", clock.now + 30)  # a slow start

    with commit_deadline(clock.now + 29), pytest.raises(ProviderTimeout) as late:
        create(service)

    assert late.value.code == "provider_timeout"
    (stored,) = repository.list("t1", 10, None).sessions
    assert (stored.status, stored.failure_reason) == (SessionStatus.FAILED, "create_deadline_passed")
    assert fake.live_ids == set() and len(fake.killed) == 1
