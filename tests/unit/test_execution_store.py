"""DynamoDBExecutionStore on moto, with the sessions table built from template.yaml: every record
shape round-trips, every transition is conditional, listings are newest first, paged, and bound
to their tenant and session."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws
from sandbox_gateway.adapters.execution_store import DEFAULT_RETENTION_SECONDS, DynamoDBExecutionStore
from sandbox_gateway.adapters.table_layout import execution_key
from sandbox_gateway.models.errors import InvalidPageToken, StorageUnavailable
from sandbox_gateway.models.execution_record import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionSource,
    ExecutionState,
    Failure,
    PendingRun,
    new_execution_id,
)

from tests.support.aws import create_sessions_table

NOW = 1_795_687_200.125


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield create_sessions_table(boto3.resource("dynamodb"), os.environ["TABLE_NAME"])


@pytest.fixture
def store(table: Any) -> DynamoDBExecutionStore:
    return DynamoDBExecutionStore(table)


def queued(
    tenant: str = "acme", session: str | None = "sess_1", at: float = NOW, **changes: Any
) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_id=new_execution_id(at),
        tenant_id=tenant,
        mode=ExecutionMode.ASYNC,
        source=ExecutionSource.API,
        state=ExecutionState.QUEUED,
        created_at=at,
        session_id=session,
        language="python",
        callback_url="https://hooks.example.com/done",
        pending=PendingRun(code="print('hé')", language="python", timeout_seconds=30, envs={"A": "1"}),
    )
    return replace(record, **changes)


RESULT = {
    "session_id": "sess_1",
    "language": "python",
    "status": "ok",
    "stdout": "naïve 🐍 ünïcödé\n",
    "stderr": "",
    "results": [{"text": "0.1", "value": 0.1, "big": 1e300, "tiny": 5e-324, "empty": "", "nested": [[]]}],
    "error": None,
    "execution_count": 3,
    "truncated": False,
    "duration_ms": 12.34,
    "sandbox_duration_ms": 10.5,
}


def test_store_round_trips_a_queued_record_with_its_pending_run(store: DynamoDBExecutionStore) -> None:
    record = queued()
    assert store.put_new(record) is True
    assert store.get("acme", record.execution_id) == record


def test_store_round_trips_a_one_off_record_without_session(store: DynamoDBExecutionStore) -> None:
    record = queued(session=None, environment="python-3.12", callback_url=None, language=None)
    assert store.put_new(record)
    assert store.get("acme", record.execution_id) == record


def test_store_round_trips_an_inline_result_with_unicode_and_floats(store: DynamoDBExecutionStore) -> None:
    record = queued(
        mode=ExecutionMode.SYNC,
        state=ExecutionState.SUCCEEDED,
        pending=None,
        started_at=NOW + 0.5,
        finished_at=NOW + 1.75,
        result=RESULT,
        result_bytes=len(json.dumps(RESULT).encode()),
    )
    assert store.put_new(record)
    found = store.get("acme", record.execution_id)
    assert found == record
    assert found is not None and found.result is not None
    assert found.result["results"][0]["value"] == 0.1 and found.result["results"][0]["tiny"] == 5e-324
    assert found.started_at == NOW + 0.5 and found.finished_at == NOW + 1.75


def test_store_round_trips_a_result_held_in_s3_and_a_failure(store: DynamoDBExecutionStore) -> None:
    in_s3 = queued(
        state=ExecutionState.SUCCEEDED,
        pending=None,
        result_key="results/acme/exe.json",
        result_bytes=10 * 1024 * 1024,
    )
    failed = queued(
        at=NOW + 1,
        state=ExecutionState.FAILED,
        pending=None,
        failure=Failure(code="session_not_found", message="no session sess_1 — ünïcödé"),
        callback={"status": "refused", "attempts": 0, "last_status_code": None},
    )
    pending_in_s3 = queued(at=NOW + 2, pending=None, pending_key="requests/acme/exe.json")
    for record in (in_s3, failed, pending_in_s3):
        assert store.put_new(record)
        assert store.get("acme", record.execution_id) == record


def test_store_keeps_a_lone_surrogate_in_a_result(store: DynamoDBExecutionStore) -> None:
    record = queued(state=ExecutionState.SUCCEEDED, pending=None, result={"stdout": "bad \ud800 half"})
    assert store.put_new(record)
    found = store.get("acme", record.execution_id)
    assert found is not None and found.result == {"stdout": "bad \ud800 half"}


def test_store_item_carries_keys_index_and_ttl(store: DynamoDBExecutionStore, table: Any) -> None:
    record = queued()
    store.put_new(record)
    item = table.get_item(Key=execution_key(record.execution_id))["Item"]
    assert item["session_executions"] == "acme#sess_1"
    assert int(item["purge_at"]) == int(NOW) + DEFAULT_RETENTION_SECONDS
    assert isinstance(item["pending_json"], str) and json.loads(item["pending_json"])["code"] == "print('hé')"

    one_off = queued(session=None, environment="python-3.12")
    store.put_new(one_off)
    item = table.get_item(Key=execution_key(one_off.execution_id))["Item"]
    assert "session_executions" not in item  # sparse: not in the index until it has a session


def test_store_retention_is_a_constructor_argument(table: Any) -> None:
    record = queued()
    DynamoDBExecutionStore(table, retention_seconds=60).put_new(record)
    item = table.get_item(Key=execution_key(record.execution_id))["Item"]
    assert int(item["purge_at"]) == int(NOW) + 60


def test_store_put_new_twice_is_refused_and_keeps_the_first(store: DynamoDBExecutionStore) -> None:
    record = queued()
    assert store.put_new(record) is True
    assert store.put_new(replace(record, language="r", pending=None)) is False
    assert store.get("acme", record.execution_id) == record


def test_store_start_only_from_queued(store: DynamoDBExecutionStore) -> None:
    record = queued()
    store.put_new(record)

    started = store.start(record, NOW + 2)
    assert started is not None
    assert started.state == ExecutionState.RUNNING and started.started_at == NOW + 2
    assert started.pending == record.pending  # still needed by the run
    assert store.start(record, NOW + 3) is None  # a second delivery does not start it again
    assert store.get("acme", record.execution_id) == started


def test_store_start_sets_a_one_off_session_and_enters_the_index(store: DynamoDBExecutionStore) -> None:
    record = queued(session=None, environment="python-3.12")
    store.put_new(record)

    started = store.start(record, NOW + 1, session_id="sess_oneoff")
    assert started is not None and started.session_id == "sess_oneoff"
    listed = store.list_for_session("acme", "sess_oneoff", 10, None)
    assert [e.execution_id for e in listed.executions] == [record.execution_id]


def test_store_start_of_a_missing_record_is_none_and_creates_nothing(
    store: DynamoDBExecutionStore, table: Any
) -> None:
    assert store.start(queued(), NOW) is None
    assert table.scan()["Items"] == []


@pytest.mark.parametrize("start_first", [False, True], ids=["from-queued", "from-running"])
def test_store_finish_from_queued_or_running_only(store: DynamoDBExecutionStore, start_first: bool) -> None:
    record = queued()
    store.put_new(record)
    current = store.start(record, NOW + 1) if start_first else record
    assert current is not None

    finished = replace(
        current,
        state=ExecutionState.SUCCEEDED,
        finished_at=NOW + 4.5,
        result=RESULT,
        result_bytes=321,
        pending=None,
    )
    done = store.finish(current, finished)
    assert done == finished  # pending run dropped, result stored
    assert store.get("acme", record.execution_id) == finished

    again = replace(finished, state=ExecutionState.FAILED, failure=Failure("worker_lost", "x"), result=None)
    assert store.finish(done, again) is None  # finished once, never twice
    assert store.get("acme", record.execution_id) == finished


def test_store_finish_with_failure_and_s3_result_drops_pending_key(
    store: DynamoDBExecutionStore, table: Any
) -> None:
    record = queued(pending=None, pending_key="requests/acme/x.json")
    store.put_new(record)
    finished = replace(
        record,
        state=ExecutionState.TIMED_OUT,
        finished_at=NOW + 9,
        result_key="results/acme/x.json",
        result_bytes=9_000_000,
        pending_key=None,
    )
    assert store.finish(record, finished) == finished

    failure = queued(at=NOW + 1)
    store.put_new(failure)
    ended = replace(
        failure, state=ExecutionState.FAILED, finished_at=NOW + 2, failure=Failure("quota_exceeded", "over")
    )
    assert store.finish(failure, replace(ended, pending=None)) == replace(ended, pending=None)
    item = table.get_item(Key=execution_key(failure.execution_id))["Item"]
    assert "pending_json" not in item and "pending_key" not in item


def test_store_finish_refuses_a_non_terminal_state(store: DynamoDBExecutionStore) -> None:
    record = queued()
    store.put_new(record)
    with pytest.raises(ValueError, match="terminal"):
        store.finish(record, replace(record, state=ExecutionState.RUNNING))


def test_store_record_callback_sets_the_report(store: DynamoDBExecutionStore) -> None:
    record = queued(state=ExecutionState.SUCCEEDED, pending=None)
    store.put_new(record)
    report: dict[str, object] = {"status": "delivered", "attempts": 2, "last_status_code": 204}
    store.record_callback(record, report)
    found = store.get("acme", record.execution_id)
    assert found is not None and found.callback == report

    purged = queued(at=NOW + 5)
    store.record_callback(purged, report)  # a purged record: nothing to report to, nothing created
    assert store.get("acme", purged.execution_id) is None


def test_store_lists_a_sessions_executions_newest_first_in_pages(store: DynamoDBExecutionStore) -> None:
    records = [queued(at=NOW + i) for i in range(5)]
    for record in records:
        store.put_new(record)
    store.put_new(queued(session="sess_other", at=NOW + 10))
    store.put_new(queued(session=None, environment="python-3.12", at=NOW + 11))

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = store.list_for_session("acme", "sess_1", 2, token)
        pages += 1
        seen.extend(e.execution_id for e in page.executions)
        token = page.next_token
        if token is None:
            break
    expected = [r.execution_id for r in reversed(records)]
    assert seen == expected
    assert pages >= 3
    first = store.list_for_session("acme", "sess_1", 10, None)
    assert first.executions == list(reversed(records))


def test_store_page_token_of_another_tenant_or_session_is_refused(store: DynamoDBExecutionStore) -> None:
    for i in range(3):
        store.put_new(queued(at=NOW + i))
        store.put_new(queued(tenant="globex", at=NOW + i))
    token = store.list_for_session("acme", "sess_1", 1, None).next_token
    assert token is not None

    with pytest.raises(InvalidPageToken):
        store.list_for_session("globex", "sess_1", 1, token)
    with pytest.raises(InvalidPageToken):
        store.list_for_session("acme", "sess_2", 1, token)
    for garbage in ("not-base64!!", base64.urlsafe_b64encode(b"[1]").decode(), "e30"):
        with pytest.raises(InvalidPageToken):
            store.list_for_session("acme", "sess_1", 1, garbage)

    # A token forged for the other tenant's partition, with the caller's own tenant key.
    forged = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged["se"] = "globex#sess_1"
    forged_token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(InvalidPageToken):
        store.list_for_session("acme", "sess_1", 1, forged_token)


def test_store_isolates_tenants(store: DynamoDBExecutionStore) -> None:
    record = queued()
    store.put_new(record)

    assert store.get("globex", record.execution_id) is None
    assert store.list_for_session("globex", "sess_1", 10, None).executions == []
    assert store.start(replace(record, tenant_id="globex"), NOW) is None
    assert store.get("acme", record.execution_id) == record


def test_store_record_is_its_own_partition_not_its_tenants(store: DynamoDBExecutionStore, table: Any) -> None:
    record = queued()
    store.put_new(record)
    item = table.get_item(Key=execution_key(record.execution_id))["Item"]
    assert item["pk"] == f"EXECUTION#{record.execution_id}" and item["sk"] == "EXECUTION"
    assert not item["pk"].startswith("TENANT#") and item["tenant_id"] == "acme"


def test_store_refuses_every_write_to_another_tenants_record(store: DynamoDBExecutionStore) -> None:
    # The id alone reaches the item now: the tenant is a condition of every write.
    record = queued()
    store.put_new(record)
    foreign = replace(record, tenant_id="globex")
    done = replace(foreign, state=ExecutionState.SUCCEEDED, finished_at=NOW + 1, pending=None, result=RESULT)
    assert store.finish(foreign, done) is None
    store.record_callback(foreign, {"delivered": True})
    assert store.put_new(foreign) is False  # the id is taken: nothing is overwritten
    assert store.get("acme", record.execution_id) == record
    assert store.get("globex", record.execution_id) is None


def test_store_tenant_with_hash_cannot_list_another_tenants_session(store: DynamoDBExecutionStore) -> None:
    # Tenant "a" with session "b#c" and tenant "a#b" with session "c" share "a#b#c".
    store.put_new(queued(tenant="a#b", session="c"))
    assert store.list_for_session("a", "b#c", 10, None).executions == []


def test_store_translates_dynamodb_errors(store: DynamoDBExecutionStore, monkeypatch: Any) -> None:
    table = store._table

    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.invalid")

    def too_large(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum"}},
            "PutItem",
        )

    for method in ("get_item", "put_item", "update_item", "query"):
        monkeypatch.setattr(table, method, unreachable)
    with pytest.raises(StorageUnavailable):
        store.get("acme", "exe_1")
    with pytest.raises(StorageUnavailable):
        store.put_new(queued())
    with pytest.raises(StorageUnavailable):
        store.start(queued(), NOW)
    with pytest.raises(StorageUnavailable):
        store.list_for_session("acme", "sess_1", 10, None)

    monkeypatch.setattr(table, "put_item", too_large)
    with pytest.raises(StorageUnavailable, match="larger than a table item"):
        store.put_new(queued())


def test_store_real_oversized_item_is_storage_unavailable(store: DynamoDBExecutionStore) -> None:
    huge = queued(state=ExecutionState.SUCCEEDED, pending=None, result={"stdout": "x" * 500_000})
    with pytest.raises(StorageUnavailable, match="larger than a table item"):
        store.put_new(huge)
