"""The session entity: expiry decided by the clock, and k-sortable ids."""

from __future__ import annotations

import re

import pytest
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.session import Session, SessionStatus, new_session_id

EXPIRES_AT = 1_700_000_900
SESSION_ID = re.compile(r"^ses_[0-9a-f]{28}$")


def make_session(status: SessionStatus) -> Session:
    return Session(
        session_id="ses_0190a1b2c3d4e5f60718293a4b5c",
        tenant_id="tenant-a",
        agent="code_executor",
        environment="e2b-python",
        provider=Provider.E2B,
        status=status,
        created_at=EXPIRES_AT - 900,
        expires_at=EXPIRES_AT,
        updated_at=EXPIRES_AT - 900,
    )


@pytest.mark.parametrize("status", [SessionStatus.CREATING, SessionStatus.ACTIVE])
@pytest.mark.parametrize("now", [EXPIRES_AT, EXPIRES_AT + 1, EXPIRES_AT + 86_400 * 3])
def test_session_effective_status_past_expiry_is_expired(status: SessionStatus, now: int) -> None:
    session = make_session(status)
    assert session.effective_status(now) is SessionStatus.EXPIRED
    assert session.as_seen_at(now).status is SessionStatus.EXPIRED
    assert session.status is status  # the entity itself is not changed


@pytest.mark.parametrize("status", [SessionStatus.CREATING, SessionStatus.ACTIVE])
def test_session_effective_status_before_expiry_is_unchanged(status: SessionStatus) -> None:
    session = make_session(status)
    assert session.effective_status(EXPIRES_AT - 1) is status
    assert session.as_seen_at(EXPIRES_AT - 1) is session


@pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.FAILED, SessionStatus.EXPIRED])
@pytest.mark.parametrize("now", [EXPIRES_AT - 1, EXPIRES_AT, EXPIRES_AT + 86_400])
def test_session_effective_status_leaves_terminal_statuses(status: SessionStatus, now: int) -> None:
    session = make_session(status)
    assert session.effective_status(now) is status
    assert session.as_seen_at(now) is session


def test_new_session_id_matches_format() -> None:
    for _ in range(50):
        assert SESSION_ID.match(new_session_id())
    assert SESSION_ID.match(new_session_id(0.0))
    assert SESSION_ID.match(new_session_id(4_102_444_800.0))  # 2100-01-01


def test_new_session_id_is_random_within_one_millisecond() -> None:
    ids = {new_session_id(1_700_000_000.0) for _ in range(200)}
    assert len(ids) == 200
    assert len({session_id[:16] for session_id in ids}) == 1  # same time prefix


@pytest.mark.parametrize(
    "times",
    [
        [1_700_000_000.000, 1_700_000_000.001, 1_700_000_000.002],
        [1_000_000_000.0, 1_700_000_000.0, 2_000_000_000.0, 4_000_000_000.0],
        [0.0, 0.001, 1.0, 16.0, 256.0, 4096.0, 65536.0],  # crosses hex digit boundaries
        [1_699_999_999.999, 1_700_000_000.0],
    ],
)
def test_new_session_id_sorts_by_time(times: list[float]) -> None:
    ids = [new_session_id(now) for now in times]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
