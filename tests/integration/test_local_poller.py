"""The local stack's queue, dead-letter queue, bus, rules and bucket on its moto server, and the poller
that feeds a function the queue's messages as Lambda's SQS event source mapping does.

The function here is a test function; the real worker is exercised through the whole stack."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.aws import COMPLETIONS_QUEUE, LocalAwsResources, QueuePoller, aws_client, create_resources
from local.stack import AwsPortInUse, dynamodb_server, running_stack
from local.template import queue_definitions

LAMBDA_SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}
QUEUE = "ExecutionQueue"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with dynamodb_server() as url:
        yield url


@pytest.fixture
def resources(server: str) -> Iterator[LocalAwsResources]:
    """Fresh resources for each test: moto's reset endpoint empties every backend after it (SQS
    allows one purge a minute)."""
    yield create_resources(server)
    requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture
def sqs(resources: LocalAwsResources) -> Any:
    return aws_client("sqs", resources.endpoint_url)


@pytest.fixture
def pollers(resources: LocalAwsResources) -> Iterator[list[QueuePoller]]:
    started: list[QueuePoller] = []
    yield started
    for poller in started:  # before the resources are reset
        poller.stop()


class Function:
    """Records each SQS event it gets; `answer(event)` decides what it returns (or raises)."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._answer = answer or (lambda _: {"batchItemFailures": []})
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(json.loads(json.dumps(event)))  # as it would cross a process boundary
        return self._answer(event)

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [record for event in self.events for record in event["Records"]]


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def count(sqs: Any, url: str) -> int:
    """Messages on the queue, visible or in flight."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    return list(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []))


def start(
    pollers: list[QueuePoller], sqs: Any, resources: LocalAwsResources, function: Function, retry: int = 0
) -> QueuePoller:
    poller = QueuePoller(sqs, resources.queue_urls[QUEUE], function, 10, retry_delay_seconds=retry)
    pollers.append(poller.start())
    return poller


def test_a_clean_batch_is_deleted_and_its_records_are_lambdas(
    sqs: Any, resources: LocalAwsResources, pollers: list[QueuePoller]
) -> None:
    url = resources.queue_urls[QUEUE]
    sent = {
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
        )["MessageId"]
        for n in range(3)
    }
    function = Function()

    poller = start(pollers, sqs, resources, function)

    eventually(lambda: poller.deleted == 3)
    assert count(sqs, url) == 0
    records = function.records()
    assert {record["messageId"] for record in records} == sent
    for record in records:
        assert set(record) == LAMBDA_SQS_RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == resources.queue_arns[QUEUE]
        assert record["awsRegion"] == "us-east-1"
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert int(record["attributes"]["SentTimestamp"]) > 0
        assert record["messageAttributes"]["origin"]["stringValue"] == "test"
        assert json.loads(record["body"])["n"] in range(3)
    assert (poller.failed_items, poller.failed_batches) == (0, 0)


def test_a_failed_item_alone_is_redelivered_then_moved_to_the_dead_letter_queue(
    sqs: Any, resources: LocalAwsResources, pollers: list[QueuePoller]
) -> None:
    url = resources.queue_urls[QUEUE]
    dead_letters = resources.dead_letter_queue_url(QUEUE)
    assert dead_letters is not None
    (definition,) = [q for q in queue_definitions() if q.logical_id == QUEUE]
    assert definition.redrive is not None
    max_receives = definition.redrive.max_receive_count
    for body in ("good", "poison", "fine"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def fail_poison(event: dict[str, Any]) -> Any:
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "poison"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    function = Function(fail_poison)
    poller = start(pollers, sqs, resources, function, retry=1)

    eventually(lambda: count(sqs, dead_letters) == 1, timeout=max_receives * 3 + 10)
    (moved,) = receive_all(sqs, dead_letters)
    assert moved["Body"] == "poison"
    assert count(sqs, url) == 0
    poison_receives = [
        r["attributes"]["ApproximateReceiveCount"] for r in function.records() if r["body"] == "poison"
    ]
    assert poison_receives == [str(n) for n in range(1, max_receives + 1)]
    others = [r["body"] for r in function.records() if r["body"] != "poison"]
    assert sorted(others) == ["fine", "good"]  # each handled once, never redelivered
    assert poller.deleted == 2
    assert poller.failed_items == max_receives
    assert poller.failed_batches == 0


def test_a_function_that_raises_returns_its_whole_batch_to_the_queue(
    sqs: Any, resources: LocalAwsResources, pollers: list[QueuePoller]
) -> None:
    url = resources.queue_urls[QUEUE]
    sent = {sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"] for body in ("one", "two")}
    calls = 0

    def crash_once(_: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the function crashed")
        return None  # no answer: every message succeeded

    function = Function(crash_once)
    poller = start(pollers, sqs, resources, function)

    eventually(lambda: poller.deleted == 2)
    first, *later = function.events
    assert {r["messageId"] for r in first["Records"]} == sent
    redelivered = [r for event in later for r in event["Records"]]
    assert {r["messageId"] for r in redelivered} == sent
    assert {r["attributes"]["ApproximateReceiveCount"] for r in redelivered} == {"2"}
    assert (poller.failed_batches, poller.failed_items) == (1, 2)
    assert count(sqs, url) == 0


def test_an_invalid_batch_response_fails_the_whole_batch(
    sqs: Any, resources: LocalAwsResources, pollers: list[QueuePoller]
) -> None:
    url = resources.queue_urls[QUEUE]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    function = Function(lambda _: {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]})

    poller = start(pollers, sqs, resources, function, retry=60)

    eventually(lambda: poller.batches == 1)
    assert (poller.deleted, poller.failed_items, poller.failed_batches) == (0, 1, 1)
    assert count(sqs, url) == 1  # back on the queue, invisible for the retry delay


def test_a_stopped_poller_takes_no_more_messages(
    sqs: Any, resources: LocalAwsResources, pollers: list[QueuePoller]
) -> None:
    function = Function()
    poller = start(pollers, sqs, resources, function)

    poller.stop()
    sqs.send_message(QueueUrl=resources.queue_urls[QUEUE], MessageBody="late")
    time.sleep(0.5)

    assert function.events == []
    assert count(sqs, resources.queue_urls[QUEUE]) == 1


def test_execution_requested_events_reach_the_queue_through_the_rule(
    sqs: Any, resources: LocalAwsResources
) -> None:
    events = aws_client("events", resources.endpoint_url)
    detail = {"tenant_id": "acme", "code": "print(1)", "idempotency_key": "k-1"}

    answer = events.put_events(
        Entries=[
            {
                "EventBusName": resources.event_bus_name,
                "Source": "acme.billing",
                "DetailType": "ExecutionRequested",
                "Detail": json.dumps(detail),
            },
            {
                "EventBusName": resources.event_bus_name,
                "Source": "acme.billing",
                "DetailType": "SomethingElse",
                "Detail": json.dumps(detail),
            },
        ]
    )

    assert answer["FailedEntryCount"] == 0
    eventually(lambda: count(sqs, resources.queue_urls[QUEUE]) >= 1)
    (message,) = receive_all(sqs, resources.queue_urls[QUEUE])
    envelope = json.loads(message["Body"])  # the rule forwards the whole EventBridge event
    assert envelope["detail-type"] == "ExecutionRequested"
    assert envelope["source"] == "acme.billing"
    assert envelope["detail"] == detail
    assert envelope["id"] == answer["Entries"][0]["EventId"]
    assert count(sqs, resources.completions_queue_url) == 0


def test_completion_events_reach_the_local_completions_queue(sqs: Any, resources: LocalAwsResources) -> None:
    events = aws_client("events", resources.endpoint_url)

    def put(source: str, detail_type: str, execution_id: str) -> None:
        entry = {
            "EventBusName": resources.event_bus_name,
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps({"execution_id": execution_id}),
        }
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    put("sandbox-gateway", "ExecutionCompleted", "exe_done")
    put("sandbox-gateway", "ExecutionFailed", "exe_failed")
    put("someone.else", "ExecutionCompleted", "exe_spoofed")  # not the service's own event

    assert resources.completions_queue_url.endswith(f"/{COMPLETIONS_QUEUE}")
    eventually(lambda: count(sqs, resources.completions_queue_url) >= 2)
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs, resources.completions_queue_url)]
    assert sorted((b["detail-type"], b["detail"]["execution_id"]) for b in bodies) == [
        ("ExecutionCompleted", "exe_done"),
        ("ExecutionFailed", "exe_failed"),
    ]
    assert count(sqs, resources.queue_urls[QUEUE]) == 0


def test_queues_and_bucket_have_the_template_configuration(sqs: Any, resources: LocalAwsResources) -> None:
    (definition,) = [q for q in queue_definitions() if q.logical_id == QUEUE]
    assert definition.redrive is not None
    attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_urls[QUEUE], AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == resources.queue_arns[definition.redrive.dead_letter_queue]
    assert int(redrive["maxReceiveCount"]) == definition.redrive.max_receive_count
    assert int(attributes["VisibilityTimeout"]) == definition.visibility_timeout_seconds

    s3 = aws_client("s3", resources.endpoint_url)
    (bucket,) = resources.bucket_names.values()
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(
        block[name]
        for name in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]


def test_the_aws_port_must_be_free() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AwsPortInUse, match=str(port)), dynamodb_server(port):
            pass


def test_a_long_poll_holds_up_no_other_request_and_returns_a_message_as_it_comes(
    sqs: Any, resources: LocalAwsResources
) -> None:
    # The server runs one request at a time; a long poll must not take that turn for its wait.
    url = resources.queue_urls[QUEUE]
    received: list[Any] = []
    waited: list[float] = []

    def long_poll() -> None:
        started = time.monotonic()
        answer = aws_client("sqs", resources.endpoint_url).receive_message(QueueUrl=url, WaitTimeSeconds=10)
        waited.append(time.monotonic() - started)
        received.extend(answer.get("Messages", []))

    poll = threading.Thread(target=long_poll)
    poll.start()
    time.sleep(0.5)  # the poll is waiting
    started = time.monotonic()
    aws_client("dynamodb", resources.endpoint_url).list_tables()
    sqs.send_message(QueueUrl=url, MessageBody="wake up")
    others = time.monotonic() - started
    poll.join(15)

    assert others < 1.0
    assert [m["Body"] for m in received] == ["wake up"]
    assert 0.4 < waited[0] < 5.0


def test_a_long_poll_of_an_empty_queue_waits_its_time(sqs: Any, resources: LocalAwsResources) -> None:
    started = time.monotonic()

    answer = sqs.receive_message(QueueUrl=resources.queue_urls[QUEUE], WaitTimeSeconds=1)

    assert "Messages" not in answer
    assert 0.9 < time.monotonic() - started < 3.0


# --- the whole stack: the poller feeds the real worker -----------------------------------------
def test_the_stack_runs_queued_and_event_triggered_executions_and_dead_letters_a_poison_message() -> None:
    with running_stack(port=0, aws_port=0, concurrency=2) as stack:
        assert stack.aws_url and stack.queue_url and stack.dead_letter_queue_url and stack.event_bus_name
        assert stack.completions_queue_url and stack.results_bucket
        sqs = aws_client("sqs", stack.aws_url)
        request = {"tenant_id": stack.tenant_id, "environment": "e2b-python", "code": "print(6 * 7)"}
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(request))
        aws_client("events", stack.aws_url).put_events(
            Entries=[
                {
                    "EventBusName": stack.event_bus_name,
                    "Source": "tests.local-poller",
                    "DetailType": "ExecutionRequested",
                    "Detail": json.dumps({**request, "code": "print(1 + 1)"}),
                }
            ]
        )
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not a message the worker takes")

        completions: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(completions) < 2 and time.monotonic() < deadline:
            answer = sqs.receive_message(
                QueueUrl=stack.completions_queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10
            )
            completions += [json.loads(m["Body"]) for m in answer.get("Messages", [])]
        assert sorted(c["detail"]["source"] for c in completions) == ["events", "sqs"]
        for completion in completions:
            assert completion["detail-type"] == "ExecutionCompleted"
            assert completion["detail"]["status"] == "succeeded"
            assert completion["detail"]["tenant_id"] == stack.tenant_id

        eventually(lambda: count(sqs, stack.dead_letter_queue_url or "") == 1, timeout=30)
        (poison,) = receive_all(sqs, stack.dead_letter_queue_url)
        assert poison["Body"] == "not a message the worker takes"
        assert count(sqs, stack.queue_url) == 0
