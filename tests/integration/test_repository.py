"""DynamoDBSessionRepository under moto: tenant scoping and conditional state changes."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.adapters.table_layout import session_key, tenant_key
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import InvalidPageToken
from sandbox_gateway.models.session import Session, SessionStatus, new_session_id

from local.template import sessions_table_definition

NOW = 1_800_000_000


def make_session(tenant: str = "t1", *, created: int = NOW, lifetime: int = 600) -> Session:
    return Session(
        session_id=new_session_id(created),
        tenant_id=tenant,
        agent="code_executor",
        environment="e2b-python",
        provider=Provider.E2B,
        status=SessionStatus.CREATING,
        created_at=created,
        updated_at=created,
        expires_at=created + lifetime,
        metadata={"k": "v"},
    )


def active(repository: DynamoDBSessionRepository, session: Session) -> Session:
    repository.put_new(session)
    activated = repository.activate(session, "sbx-1", NOW)
    assert activated is not None
    return activated


def test_put_then_get_round_trips_every_field(repository: DynamoDBSessionRepository) -> None:
    session = make_session()
    repository.put_new(session)
    assert repository.get("t1", session.session_id) == session


def test_get_is_scoped_by_tenant(repository: DynamoDBSessionRepository) -> None:
    session = make_session("t1")
    repository.put_new(session)
    assert repository.get("t2", session.session_id) is None


def test_activate_only_from_creating_and_only_before_expiry(repository: DynamoDBSessionRepository) -> None:
    session = make_session()
    repository.put_new(session)

    assert repository.activate(session, "sbx-1", NOW + 601) is None  # expired meanwhile
    activated = repository.activate(session, "sbx-1", NOW)
    assert (
        activated is not None and activated.status == SessionStatus.ACTIVE and activated.sandbox_id == "sbx-1"
    )
    assert repository.activate(session, "sbx-2", NOW) is None  # not twice


def test_updates_never_create_an_item(repository: DynamoDBSessionRepository) -> None:
    ghost = make_session()
    assert repository.activate(ghost, "sbx", NOW) is None
    assert repository.mark_failed(ghost, "x", NOW) is None
    assert repository.get("t1", ghost.session_id) is None


def test_close_before_expiry_is_closed_and_after_is_expired(repository: DynamoDBSessionRepository) -> None:
    first, second = active(repository, make_session()), active(repository, make_session(created=NOW + 1))

    closed = repository.close(first, NOW + 10)
    expired = repository.close(second, NOW + 10_000)

    assert closed is not None and closed.status == SessionStatus.CLOSED and closed.closed_at == NOW + 10
    assert expired is not None and expired.status == SessionStatus.EXPIRED
    assert repository.close(first, NOW + 20) is None  # ended sessions stay ended


def test_extend_is_refused_once_expired_or_closed(repository: DynamoDBSessionRepository) -> None:
    session = active(repository, make_session())

    assert repository.extend(session, NOW + 5000, NOW + 601) is None  # past expiry: no resurrection
    extended = repository.extend(session, NOW + 5000, NOW + 100)
    assert extended is not None and extended.expires_at == NOW + 5000
    repository.close(session, NOW + 200)
    assert repository.extend(session, NOW + 9000, NOW + 300) is None


def test_mark_failed_ends_a_live_session_only(repository: DynamoDBSessionRepository) -> None:
    session = active(repository, make_session())
    failed = repository.mark_failed(session, "sandbox_gone", NOW)
    assert (
        failed is not None
        and failed.status == SessionStatus.FAILED
        and failed.failure_reason == "sandbox_gone"
    )
    assert repository.mark_failed(session, "again", NOW) is None


def test_lease_is_exclusive_until_released_or_lapsed(repository: DynamoDBSessionRepository) -> None:
    session = active(repository, make_session())

    assert repository.acquire_lease(session, "a", NOW + 30, NOW)
    assert not repository.acquire_lease(session, "b", NOW + 30, NOW + 1)
    repository.release_lease(session, "b")  # not the holder: no effect
    assert not repository.acquire_lease(session, "b", NOW + 30, NOW + 2)
    repository.release_lease(session, "a")
    assert repository.acquire_lease(session, "b", NOW + 40, NOW + 3)
    # A holder that crashed never releases; its lease lapses.
    assert repository.acquire_lease(session, "c", NOW + 100, NOW + 41)


def test_lease_refused_for_expired_session(repository: DynamoDBSessionRepository) -> None:
    session = active(repository, make_session())
    assert not repository.acquire_lease(session, "a", NOW + 700, NOW + 601)


def test_list_pages_newest_first_within_one_tenant(repository: DynamoDBSessionRepository) -> None:
    ids = []
    for offset in range(5):
        session = make_session("t1", created=NOW + offset)
        repository.put_new(session)
        ids.append(session.session_id)
    repository.put_new(make_session("t2"))

    seen, token = [], None
    while True:
        page = repository.list("t1", 2, token)
        seen += [s.session_id for s in page.sessions]
        token = page.next_token
        if token is None:
            break
    assert seen == ids[::-1]


@pytest.mark.parametrize("token", ["", "!!!", "e30", "bm90IGpzb24"])
def test_list_rejects_tokens_it_did_not_issue(repository: DynamoDBSessionRepository, token: str) -> None:
    if token == "":
        assert repository.list("t1", 2, token).sessions == []
        return
    with pytest.raises(InvalidPageToken):
        repository.list("t1", 2, token)


def test_expired_live_sessions_of_every_tenant_are_listed_oldest_first(
    repository: DynamoDBSessionRepository,
) -> None:
    old = active(repository, make_session("t1", lifetime=60))
    older = make_session("t2", lifetime=30)
    repository.put_new(older)  # still creating: a crash between put and sandbox
    later = active(repository, make_session("t3", lifetime=600))

    found = repository.list_expired(NOW + 100, 10)

    assert [s.session_id for s in found] == [older.session_id, old.session_id]
    assert later.session_id not in {s.session_id for s in repository.list_expired(NOW + 599, 10)}
    assert len(repository.list_expired(NOW + 600, 1)) == 1  # bounded per run


def test_ended_sessions_leave_the_live_index(repository: DynamoDBSessionRepository) -> None:
    closed = active(repository, make_session("t1", lifetime=60))
    failed = active(repository, make_session("t1", lifetime=60))
    assert repository.close(closed, NOW + 1) is not None
    assert repository.mark_failed(failed, "sandbox_gone", NOW + 1) is not None

    assert repository.list_expired(NOW + 1000, 10) == []


def test_expire_only_once_past_expiry_and_only_while_live(repository: DynamoDBSessionRepository) -> None:
    session = active(repository, make_session("t1", lifetime=60))

    assert repository.expire(session, NOW + 59) is None  # not yet
    extended = repository.extend(session, NOW + 600, NOW + 59)
    assert extended is not None
    assert repository.expire(session, NOW + 61) is None  # kept alive meanwhile
    expired = repository.expire(session, NOW + 600)
    assert expired is not None and expired.status == SessionStatus.EXPIRED
    assert repository.expire(session, NOW + 700) is None  # once
    assert repository.list_expired(NOW + 1000, 10) == []


# --- issue 11 part 7: each session its own partition (docs/decisions/0008-capacity.md) -------------
def _token(fields: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def test_a_session_is_its_own_partition_not_its_tenants(
    repository: DynamoDBSessionRepository, table: Any
) -> None:
    session = active(repository, make_session("t1"))
    item = table.get_item(Key=session_key(session.session_id))["Item"]
    assert item["pk"] == f"SESSION#{session.session_id}" and item["sk"] == "SESSION"
    assert item["tenant_id"] == item["tenant_sessions"] == "t1"
    # The tenant's own partition keeps only its tenant item (the counter) and usage items.
    assert table.get_item(Key=tenant_key("t1"))["Item"]["active_sessions"] == 1
    partition = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "TENANT#t1"})
    assert {i["sk"].split("#")[0] for i in partition["Items"]} == {"TENANT", "USAGE"}


def test_every_write_naming_another_tenants_session_changes_nothing(
    repository: DynamoDBSessionRepository, table: Any
) -> None:
    # The session id alone reaches the item now: the tenant is a condition of every write.
    session = active(repository, make_session("t1"))
    before = table.get_item(Key=session_key(session.session_id))["Item"]
    theirs = replace(session, tenant_id="t2")

    assert repository.lease("t2", session.session_id, "x", NOW + 30, NOW) is None
    assert repository.acquire_lease(theirs, "x", NOW + 30, NOW) is None
    assert repository.activate(replace(theirs, status=SessionStatus.CREATING), "sbx-2", NOW) is None
    assert repository.extend(theirs, NOW + 5000, NOW) is None
    repository.release_lease(theirs, "x")
    assert repository.close(theirs, NOW + 1) is None
    assert repository.expire(theirs, NOW + 10_000) is None
    assert repository.mark_failed(theirs, "x", NOW) is None

    assert table.get_item(Key=session_key(session.session_id))["Item"] == before
    assert "Item" not in table.get_item(Key=tenant_key("t2"))  # no counter moved for t2
    assert table.get_item(Key=tenant_key("t1"))["Item"]["active_sessions"] == 1
    assert repository.get("t2", session.session_id) is None


def test_list_pages_newest_first_through_the_index_among_other_tenants(
    repository: DynamoDBSessionRepository,
) -> None:
    ours = []
    for offset in range(7):
        mine = make_session("t1", created=NOW + offset)
        repository.put_new(mine)
        ours.append(mine.session_id)
        repository.put_new(make_session("t2", created=NOW + offset))  # interleaved in time
    seen, token, pages = [], None, 0
    while True:
        page = repository.list("t1", 3, token)
        pages += 1
        assert all(s.tenant_id == "t1" for s in page.sessions)
        seen += [s.session_id for s in page.sessions]
        token = page.next_token
        if token is None:
            break
    assert seen == ours[::-1] and pages == 3


def test_list_refuses_a_token_of_another_tenant_or_a_forged_one(
    repository: DynamoDBSessionRepository,
) -> None:
    for offset in range(3):
        repository.put_new(make_session("t1", created=NOW + offset))
        repository.put_new(make_session("t2", created=NOW + offset))
    token = repository.list("t1", 1, None).next_token
    assert token is not None
    with pytest.raises(InvalidPageToken):
        repository.list("t2", 1, token)
    for forged in ({"t": "t2", "s": "ses_x"}, {"t": "t1"}, {"t": "t1", "s": ""}, {"t": "t1", "s": 7}, ["t1"]):
        with pytest.raises(InvalidPageToken):
            repository.list("t1", 1, _token(forged))  # type: ignore[arg-type]


def test_a_listing_never_carries_the_lease_or_the_sandbox_access(
    repository: DynamoDBSessionRepository,
) -> None:
    session = make_session("t1")
    repository.put_new(session)
    repository.activate(session, "sbx-1", NOW, sandbox_access="sealed")
    assert repository.lease("t1", session.session_id, "lease-1", NOW + 30, NOW) is not None

    (listed,) = repository.list("t1", 10, None).sessions
    assert listed.sandbox_id == "sbx-1" and listed.sandbox_access is None
    found = repository.get("t1", session.session_id)
    assert found is not None and found.sandbox_access == "sealed"


def test_the_session_indexes_leave_out_what_an_execute_writes() -> None:
    # A lease write (lease_id, lease_until) then changes no projected attribute: no index write,
    # so an execute's two writes land on the session's own partition only.
    indexes = {i["IndexName"]: i for i in sessions_table_definition()["GlobalSecondaryIndexes"]}
    for name in ("SessionsByTenant", "LiveByExpiry"):
        projection = indexes[name]["Projection"]
        assert projection["ProjectionType"] == "INCLUDE"
        assert not {"lease_id", "lease_until", "sandbox_access"} & set(projection["NonKeyAttributes"])
    assert indexes["SessionsByTenant"]["KeySchema"] == [
        {"AttributeName": "tenant_sessions", "KeyType": "HASH"},
        {"AttributeName": "session_id", "KeyType": "RANGE"},
    ]


def test_the_session_indexes_project_every_field_a_listing_shows(
    repository: DynamoDBSessionRepository, table: Any
) -> None:
    """INCLUDE projections name their attributes: a session field added later must be added to
    them too, or listings (and the reaper's index reads) silently lose it."""
    session = make_session("t1")
    repository.put_new(session)
    repository.activate(session, "sbx-1", NOW, sandbox_access="sealed")
    item = table.get_item(Key=session_key(session.session_id))["Item"]
    private = {"pk", "sk", "purge_at", "lease_id", "lease_until", "sandbox_access"}
    index_keys = {"live_shard", "tenant_sessions"}  # each index's own keys, not a session's fields
    ended = {"failure_reason", "closed_at"}  # written when a session ends; listed then
    indexes = {i["IndexName"]: i for i in sessions_table_definition()["GlobalSecondaryIndexes"]}
    for name in ("SessionsByTenant", "LiveByExpiry"):
        index = indexes[name]
        keys = {key["AttributeName"] for key in index["KeySchema"]}
        projected = set(index["Projection"]["NonKeyAttributes"]) | keys
        assert set(item) - private - index_keys - projected == set(), name
        assert ended <= projected, name
