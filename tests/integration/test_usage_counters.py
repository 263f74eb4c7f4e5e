"""Usage after a known flow, through the handlers: what GET /api/usage reports is exactly what
happened, for the caller's tenant only, and failed calls count nothing."""

from __future__ import annotations

import base64
import time
from typing import Any

from botocore.exceptions import ClientError
from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.config import Settings

from tests.integration.conftest import Api, body_of, usage_of
from tests.support.events import load_event, with_tenant
from tests.support.handlers import invoke

A, B = "tenant-usage-a", "tenant-usage-b"
PAYLOAD = bytes(range(256)) * 7 + b"tail"  # N bytes, binary on purpose
N = len(PAYLOAD)
AGED_SECONDS = 100  # the closed session is made this old, so its sandbox seconds are known


def call(function: str, event_name: str, tenant: str, session_id: str | None = None, **body: Any) -> dict:
    return invoke(function, with_tenant(load_event(event_name, session_id, **body), tenant))


def totals(usage: dict[str, Any]) -> dict[str, int]:
    names = ("sessions_created", "executions", "sandbox_seconds", "bytes_uploaded", "bytes_downloaded")
    return {name: sum(day[name] for day in usage["days"]) for name in names}


def create(tenant: str) -> str:
    response = call("sessions", "sessions_create", tenant)
    assert response["statusCode"] == 201, response["body"]
    return str(body_of(response)["session_id"])


def age(table: Any, tenant: str, session_id: str, seconds: int) -> int:
    """Move the session's created_at back, as if it had lived `seconds`; the new created_at."""
    created_at = int(time.time()) - seconds
    table.update_item(
        Key=session_key(session_id),
        UpdateExpression="SET created_at = :t",
        ExpressionAttributeValues={":t": created_at},
    )
    return created_at


def test_usage_after_a_known_flow_is_exact_and_only_the_callers(api: Api, table: Any) -> None:
    other = create(B)
    before_b = usage_of(B)

    first, second = create(A), create(A)
    for code in ("print(1)", "x = 2", "raise ValueError"):  # a user error is still an execution
        assert call("execute", "execute_python", A, first, code=code)["statusCode"] == 200
    content = base64.b64encode(PAYLOAD).decode()
    assert call("files", "files_write", A, first, content=content)["statusCode"] == 201
    read = call("files", "files_read", A, first)
    assert read["statusCode"] == 200 and base64.b64decode(body_of(read)["content"]) == PAYLOAD
    age(table, A, second, AGED_SECONDS)
    started = time.time()
    assert call("sessions", "sessions_delete", A, second)["statusCode"] == 200
    closed_within = int(time.time() - started) + 2

    usage = usage_of(A)

    assert usage["tenant_id"] == A
    assert usage["active_sessions"] == 1
    assert len(usage["days"]) == 1 and usage["days"][0]["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    counted = totals(usage)
    assert AGED_SECONDS <= counted.pop("sandbox_seconds") <= AGED_SECONDS + closed_within
    assert counted == {"sessions_created": 2, "executions": 3, "bytes_uploaded": N, "bytes_downloaded": N}
    defaults = Settings()
    assert usage["quotas"] == {
        "max_active_sessions": defaults.quota_max_active_sessions,
        "max_session_seconds": defaults.session_timeout_max_seconds,
        "max_execution_seconds": defaults.execution_timeout_max_seconds,
        "max_code_bytes": defaults.max_code_bytes,
        "max_file_bytes": defaults.max_file_bytes,
    }
    assert usage["quotas"]["max_active_sessions"] == 10

    # The other tenant's usage did not move, and it sees none of A's.
    assert usage_of(B) == before_b
    assert totals(before_b)["sessions_created"] == 1 and before_b["active_sessions"] == 1
    assert call("sessions", "sessions_get", B, other)["statusCode"] == 200


def test_failed_and_refused_calls_count_nothing(api: Api, table: Any) -> None:
    mine, theirs = create(A), create(B)
    before = {t: usage_of(t) for t in (A, B)}
    content = base64.b64encode(PAYLOAD).decode()

    # Another tenant's session: 404, and neither tenant is charged.
    assert call("execute", "execute_python", A, theirs)["statusCode"] == 404
    assert call("files", "files_write", A, theirs, content=content)["statusCode"] == 404
    assert call("files", "files_read", A, theirs)["statusCode"] == 404
    assert call("sessions", "sessions_delete", A, theirs)["statusCode"] == 404
    # Refused requests in one's own session.
    assert call("files", "files_read", A, mine)["statusCode"] == 404  # no such file
    assert call("files", "files_write_bad_base64", A, mine)["statusCode"] == 400
    assert call("execute", "execute_missing_code", A, mine)["statusCode"] == 422
    # Over the live-session quota: no session, no count.
    DynamoDBTenantStore(table).set_quota_overrides(A, {"max_active_sessions": 1})
    assert call("sessions", "sessions_create", A)["statusCode"] == 429

    assert {t: usage_of(t) for t in (A, B)} == before | {
        A: before[A] | {"quotas": before[A]["quotas"] | {"max_active_sessions": 1}}
    }


def test_closing_twice_counts_the_sandbox_seconds_once(api: Api, table: Any) -> None:
    session_id = create(A)
    age(table, A, session_id, AGED_SECONDS)
    for _ in range(3):
        assert call("sessions", "sessions_delete", A, session_id)["statusCode"] == 200

    counted = totals(usage_of(A))
    assert AGED_SECONDS <= counted["sandbox_seconds"] <= AGED_SECONDS + 5
    assert usage_of(A)["active_sessions"] == 0


def test_a_raw_download_counts_its_bytes(api: Api) -> None:
    session_id = create(A)
    content = base64.b64encode(PAYLOAD).decode()
    call("files", "files_write", A, session_id, content=content)

    raw = call("files", "files_read_raw", A, session_id)

    assert base64.b64decode(raw["body"]) == PAYLOAD
    assert totals(usage_of(A))["bytes_downloaded"] == N


def test_a_usage_write_meeting_a_transaction_is_retried_not_lost(api: Api, table: Any) -> None:
    """Moto never produces it: in DynamoDB a write to an item that a transaction is writing (the
    day's usage item, which session starts and ends write in theirs) fails with
    TransactionConflictException, which botocore does not retry. Found: the execution then went
    uncounted (the ledger logs and drops a failed usage write); now the write is tried again."""
    store = DynamoDBTenantStore(table)
    real = table.update_item
    failures = [0]

    def update_item(**kwargs: Any) -> Any:
        if str(kwargs["Key"]["sk"]).startswith("USAGE#") and failures[0] < 2:
            failures[0] += 1
            raise ClientError(
                {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}},
                "UpdateItem",
            )
        return real(**kwargs)

    table.update_item = update_item  # the store holds this very Table object
    store.add_usage(A, time.strftime("%Y-%m-%d", time.gmtime()), {"executions": 1, "bytes_uploaded": 7})

    assert failures[0] == 2
    assert totals(usage_of(A)) | {"sandbox_seconds": 0} == {
        "sessions_created": 0,
        "executions": 1,
        "sandbox_seconds": 0,
        "bytes_uploaded": 7,
        "bytes_downloaded": 0,
    }


def test_an_expired_session_counts_its_lifetime_not_the_time_until_the_reaper_came(
    api: Api, table: Any
) -> None:
    """Found: a session ended by the reaper counted now - created_at, so every expired session was
    charged up to a reaper interval (a minute) past its expiry, when its sandbox was already gone
    (the provider's own timeout is the session's lifetime). It counts until expires_at now."""
    session_id = create(A)
    now = int(time.time())
    table.update_item(
        Key=session_key(session_id),
        UpdateExpression="SET created_at = :created, expires_at = :expired",
        ExpressionAttributeValues={":created": now - 300, ":expired": now - 100},
    )

    report = invoke("reaper", load_event("reaper_scheduled"))

    assert report["expired"] == 1
    usage = usage_of(A)
    assert usage["active_sessions"] == 0
    assert totals(usage)["sandbox_seconds"] == 200
