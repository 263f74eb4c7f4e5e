"""The executions' S3, SQS and EventBridge adapters on moto: results stored encrypted and read back,
presigned URLs shaped right, the queue message, and completion events as a rule on the bus
delivers them. Publishing a completion event never raises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from sandbox_gateway.adapters import aws_outbound
from sandbox_gateway.adapters.aws_outbound import (
    EventBridgeExecutionEvents,
    S3ResultStore,
    SqsExecutionQueue,
    completion_detail,
    s3_client,
)
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.execution_record import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionSource,
    ExecutionState,
    Failure,
)

BUCKET = "sandbox-gateway-results-test"
BUS = "sandbox-gateway-test"
URL_SECONDS = 900
CREATED = 1_795_687_200.0  # 2026-11-26T10:00:00Z
RESULT = {"status": "ok", "stdout": "hi\n", "duration_ms": 812.5, "sandbox_duration_ms": 640.25}


def succeeded(**changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_id="exe_019ac0f5a9c01a2b3c4d5e6f7a8b",
        tenant_id="acme",
        mode=ExecutionMode.ASYNC,
        source=ExecutionSource.SQS,
        state=ExecutionState.SUCCEEDED,
        created_at=CREATED,
        session_id="sess_1",
        started_at=CREATED + 1.5,
        finished_at=CREATED + 2.3125,
        result=RESULT,
        result_bytes=97,
    )
    return replace(record, **changes)


class RecordingLogger:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, message: str, extra: dict[str, Any] | None = None) -> None:
        self.warnings.append((message, extra or {}))


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def results(aws: None) -> S3ResultStore:
    client = s3_client()
    client.create_bucket(Bucket=BUCKET)
    return S3ResultStore(client, BUCKET, URL_SECONDS)


# --- S3 -----------------------------------------------------------------------------------------
def test_results_put_then_get_round_trips_bytes_encrypted_as_json(results: S3ResultStore) -> None:
    body = json.dumps({"stdout": "ünïcödé " * 1000}).encode()
    results.put("results/acme/exe_1.json", body)

    assert results.get("results/acme/exe_1.json") == body
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="results/acme/exe_1.json")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/json"


def test_results_get_of_a_missing_key_says_it_is_gone(results: S3ResultStore) -> None:
    with pytest.raises(StorageUnavailable, match="no longer stored"):
        results.get("results/acme/never.json")


def test_results_missing_bucket_is_storage_unavailable(aws: None) -> None:
    store = S3ResultStore(s3_client(), "no-such-bucket", URL_SECONDS)
    with pytest.raises(StorageUnavailable, match="unavailable"):
        store.put("k", b"{}")


def test_results_url_is_a_sigv4_presigned_get_that_expires(results: S3ResultStore, monkeypatch: Any) -> None:
    monkeypatch.setattr(aws_outbound.time, "time", lambda: 1_800_000_000.7)
    results.put("results/acme/exe_1.json", b"{}")

    url, expires_at = results.url("results/acme/exe_1.json")

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.scheme == "https"
    # Virtual-hosted or path style: either way the bucket and the key are in the URL.
    assert BUCKET in parts.netloc + parts.path
    assert parts.path.endswith("/results/acme/exe_1.json")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(URL_SECONDS)]
    assert "X-Amz-Signature" in query and "X-Amz-Credential" in query
    assert expires_at == 1_800_000_000 + URL_SECONDS


def test_results_client_on_a_local_endpoint_uses_path_style(aws: None) -> None:
    client = s3_client("http://127.0.0.1:4566")
    url = S3ResultStore(client, BUCKET, 60).url("results/acme/x.json")[0]
    parts = urlsplit(url)
    assert parts.netloc == "127.0.0.1:4566"
    assert parts.path == f"/{BUCKET}/results/acme/x.json"
    assert parse_qs(parts.query)["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


# --- SQS ----------------------------------------------------------------------------------------
def test_queue_enqueue_sends_only_the_execution_id_and_its_tenant(aws: None) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="executions")["QueueUrl"]

    SqsExecutionQueue(sqs, queue_url).enqueue("exe_019ac0f5a9c0abc", "acme")

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [
        {"execution_id": "exe_019ac0f5a9c0abc", "tenant_id": "acme"}
    ]


def test_queue_missing_queue_is_storage_unavailable(aws: None) -> None:
    sqs = boto3.client("sqs")
    missing = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"
    with pytest.raises(StorageUnavailable):
        SqsExecutionQueue(sqs, missing).enqueue("exe_1", "acme")


# --- EventBridge --------------------------------------------------------------------------------
@pytest.fixture
def bus_to_queue(aws: None) -> tuple[Any, str]:
    """The bus with a rule forwarding every sandbox-gateway event to a queue: (sqs client, url)."""
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="completions", EventBusName=BUS, EventPattern=json.dumps({"source": ["sandbox-gateway"]})
    )
    events.put_targets(Rule="completions", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, queue_url


def delivered(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_events_succeeded_execution_publishes_execution_completed(bus_to_queue: tuple[Any, str]) -> None:
    sqs, queue_url = bus_to_queue
    record = succeeded()

    EventBridgeExecutionEvents(boto3.client("events"), BUS).finished(record)

    [event] = delivered(sqs, queue_url)
    assert event["source"] == "sandbox-gateway"
    assert event["detail-type"] == "ExecutionCompleted"
    assert event["detail"] == {
        "execution_id": record.execution_id,
        "session_id": "sess_1",
        "tenant_id": "acme",
        "status": "succeeded",
        "outcome": "ok",
        "mode": "async",
        "source": "sqs",
        "environment": None,
        "created_at": "2026-11-26T10:00:00.000Z",
        "started_at": "2026-11-26T10:00:01.500Z",
        "finished_at": "2026-11-26T10:00:02.312Z",
        "duration_ms": 812.5,
        "sandbox_duration_ms": 640.25,
        "failure": None,
        "result": {"href": f"/api/executions/{record.execution_id}", "bytes": 97, "stored": "inline"},
    }


@pytest.mark.parametrize("state", [ExecutionState.FAILED, ExecutionState.TIMED_OUT])
def test_events_failed_or_timed_out_execution_publishes_execution_failed(
    bus_to_queue: tuple[Any, str], state: ExecutionState
) -> None:
    sqs, queue_url = bus_to_queue
    record = succeeded(
        state=state,
        session_id=None,
        environment="python-3.12",
        started_at=None,
        result=None,
        result_bytes=None,
        failure=Failure("quota_exceeded", "the tenant already has 5 live sessions"),
    )

    EventBridgeExecutionEvents(boto3.client("events"), BUS, source="sandbox-gateway").finished(record)

    [event] = delivered(sqs, queue_url)
    assert event["detail-type"] == "ExecutionFailed"
    detail = event["detail"]
    assert detail["status"] == state.value
    assert detail["failure"] == {
        "code": "quota_exceeded",
        "message": "the tenant already has 5 live sessions",
    }
    assert detail["session_id"] is None and detail["environment"] == "python-3.12"
    assert detail["started_at"] is None and detail["duration_ms"] is None and detail["outcome"] is None
    assert detail["result"] == {
        "href": f"/api/executions/{record.execution_id}",
        "bytes": None,
        "stored": None,
    }


def test_completion_detail_of_an_s3_result_times_the_run_with_the_records_clock() -> None:
    record = succeeded(result=None, result_key="results/acme/x.json", result_bytes=10_485_760)
    detail = completion_detail(record)
    assert detail["result"]["stored"] == "s3" and detail["result"]["bytes"] == 10_485_760
    assert detail["duration_ms"] == 812.5  # finished_at - started_at
    assert detail["sandbox_duration_ms"] is None and detail["outcome"] is None
    json.dumps(detail)  # what put_events sends: plain JSON


def test_events_publishing_failures_are_logged_never_raised(aws: None, monkeypatch: Any) -> None:
    log = RecordingLogger()
    monkeypatch.setattr(aws_outbound, "logger", log)
    client = boto3.client("events")

    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://events.invalid")

    def refused(**_: Any) -> Any:
        return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}

    monkeypatch.setattr(client, "put_events", unreachable)
    EventBridgeExecutionEvents(client, BUS).finished(succeeded())
    monkeypatch.setattr(client, "put_events", refused)
    EventBridgeExecutionEvents(client, BUS).finished(succeeded())

    assert [message for message, _ in log.warnings] == ["completion event not published"] * 2
    assert log.warnings[1][1]["error"] == "InternalFailure"
    assert all(extra["execution_id"] == succeeded().execution_id for _, extra in log.warnings)


def test_events_published_entry_is_well_formed(aws: None, monkeypatch: Any) -> None:
    client = boto3.client("events")
    sent: list[dict[str, Any]] = []

    def accept(**request: Any) -> dict[str, Any]:
        sent.append(request)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}

    monkeypatch.setattr(client, "put_events", accept)
    log = RecordingLogger()
    monkeypatch.setattr(aws_outbound, "logger", log)

    EventBridgeExecutionEvents(client, BUS, source="custom").finished(succeeded())

    [entry] = sent[0]["Entries"]
    assert entry["EventBusName"] == BUS and entry["Source"] == "custom"
    assert entry["DetailType"] == "ExecutionCompleted"
    assert json.loads(entry["Detail"]) == completion_detail(succeeded())
    assert log.warnings == []
