"""Async and event-triggered executions through the real handlers and the worker, on moto: the
queue, DLQ, bus, rule and bucket come from template.yaml (local/aws.py); sandboxes are fakes."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from sandbox_gateway import wiring
from sandbox_gateway.adapters.callbacks import SIGNATURE_HEADER, verify_signature
from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.models.execution import ExecutionOutcome, ExecutionStatus
from sandbox_gateway.models.execution_record import execution_id_for_message

from local.aws import LocalAwsResources, create_resources
from local.template import queue_definitions
from tests.integration.conftest import Api, body_of
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import FakeLambdaContext, invoke, load_handler_module

TENANT = "tenant-example"  # the events/ files' tenant


@dataclass
class Aws:
    resources: LocalAwsResources
    sqs: Any
    s3: Any
    events: Any

    @property
    def queue_url(self) -> str:
        return self.resources.queue_urls["ExecutionQueue"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.resources.queue_urls["ExecutionDeadLetterQueue"]

    @property
    def results_bucket(self) -> str:
        return self.resources.bucket_names["ResultsBucket"]

    @property
    def max_receive_count(self) -> int:
        (queue,) = [q for q in queue_definitions() if q.logical_id == "ExecutionQueue"]
        assert queue.redrive is not None
        return queue.redrive.max_receive_count

    def messages(self, queue_url: str, wait: bool = False) -> list[dict[str, Any]]:
        found = self.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        )
        return found.get("Messages", [])

    def completions(self) -> list[dict[str, Any]]:
        events = []
        while batch := self.messages(self.resources.completions_queue_url):
            for message in batch:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.resources.completions_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return events


@pytest.fixture
def aws(table: Any, provider: FakeSandboxProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    resources = create_resources(None)  # type: ignore[arg-type]  # None: moto in-process
    monkeypatch.setenv("EXECUTION_QUEUE_URL", resources.queue_urls["ExecutionQueue"])
    monkeypatch.setenv("EVENT_BUS_NAME", resources.event_bus_name)
    monkeypatch.setenv("RESULTS_BUCKET", resources.bucket_names["ResultsBucket"])
    monkeypatch.setenv("CALLBACK_ALLOW_LOOPBACK", "true")
    wiring.reset(keep_overrides=True)
    yield Aws(resources, boto3.client("sqs"), boto3.client("s3"), boto3.client("events"))
    wiring.reset(keep_overrides=True)


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event an SQS event source mapping hands the worker."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:execution-queue",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def run_worker(event: dict[str, Any]) -> list[str]:
    """The worker on one batch: the message ids it reported as failed."""
    answer = load_handler_module("worker").lambda_handler(event, FakeLambdaContext())
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def drain(aws: Aws) -> list[str]:
    """Feed the queue to the worker as the event source mapping would; the failed message ids."""
    failed: list[str] = []
    while batch := aws.messages(aws.queue_url):
        failures = run_worker(sqs_event(batch))
        failed += failures
        for message in batch:
            handle = message["ReceiptHandle"]
            if message["MessageId"] in failures:
                # Visible again at once, not after the queue's VisibilityTimeout (the worker's timeout).
                aws.sqs.change_message_visibility(
                    QueueUrl=aws.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
                )
            else:
                aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=handle)
        if failures:
            break
    return failed


def execute(api: Api, session_id: str | None, headers: dict[str, str] | None = None, **body: Any) -> dict:
    event = load_event("execute_python", session_id, **body)
    if session_id is None:
        event["body"] = json.dumps({k: v for k, v in json.loads(event["body"]).items() if k != "session_id"})
    event["headers"].update(headers or {})
    return invoke("execute", event)


def get(path: str, tenant: str = TENANT) -> dict:
    event = load_event("sessions_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = (
        "GET /api/sessions/{session_id}/executions"
        if path.endswith("/executions")
        else "GET /api/executions/{execution_id}"
    )
    event["pathParameters"] = {}
    return invoke("execute", with_tenant(event, tenant))


def executions_run(provider: FakeSandboxProvider) -> int:
    return sum(len(sandbox.runs) for sandbox in provider.sandboxes.values())


# --- async over the API ---------------------------------------------------------------------------
def test_async_execute_answers_202_then_the_worker_runs_it_and_it_can_be_read(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()

    queued = execute(api, session_id, mode="async", code="print('hi')")

    assert queued["statusCode"] == 202, queued["body"]
    body = body_of(queued)
    assert body["status"] == "queued"
    assert queued["headers"]["Location"] == f"/api/executions/{body['execution_id']}"
    assert body_of(get(body["href"]))["status"] == "queued"
    assert executions_run(provider) == 0

    assert drain(aws) == []

    done = body_of(get(body["href"]))
    assert done["status"] == "succeeded"
    assert done["mode"] == "async"
    assert done["result"]["stdout"] == "ran python: print('hi')\n"
    assert done["result"]["execution_id"] == body["execution_id"]
    assert done["started_at"] and done["finished_at"]


def test_sync_executions_are_recorded_and_listed_newest_first_with_async_ones(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    first = body_of(execute(api, session_id, code="1"))
    second = body_of(execute(api, session_id, mode="async", code="2"))
    drain(aws)

    listed = body_of(get(f"/api/sessions/{session_id}/executions"))["executions"]

    assert [e["execution_id"] for e in listed] == [second["execution_id"], first["execution_id"]]
    assert [e["mode"] for e in listed] == ["async", "sync"]
    fetched = body_of(get(f"/api/executions/{first['execution_id']}"))
    assert fetched["result"]["stdout"] == first["stdout"]


def test_another_tenants_execution_answers_like_a_missing_one(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    execution = body_of(execute(api, api.create_session(), code="1"))

    response = get(f"/api/executions/{execution['execution_id']}", tenant="tenant-other")

    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "execution_not_found"


def test_a_one_off_async_execution_closes_its_session_and_leaves_no_sandbox(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    queued = body_of(execute(api, None, mode="async", environment="e2b-python", code="print(1)"))

    drain(aws)

    done = body_of(get(queued["href"]))
    assert done["status"] == "succeeded"
    assert done["session_id"]
    assert provider.live_ids == set()
    session = body_of(api.call("sessions", "sessions_get", done["session_id"]))
    assert session["status"] == "closed"


def test_a_sync_timeout_over_the_sync_limit_points_to_async(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    response = execute(api, api.create_session(), timeout_seconds=120)

    assert response["statusCode"] == 400
    assert '"mode": "async"' in body_of(response)["error"]["message"]


def test_an_async_execution_may_run_past_the_sync_limit(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    queued = body_of(execute(api, session_id, mode="async", timeout_seconds=300, code="1"))

    drain(aws)

    assert body_of(get(queued["href"]))["status"] == "succeeded"
    runs = [run for sandbox in provider.sandboxes.values() for run in sandbox.runs]
    assert runs[-1].timeout_seconds == 300


# --- large results ------------------------------------------------------------------------------
def test_a_10_mb_async_result_is_stored_in_s3_and_served_by_a_presigned_url(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    provider.next_outcome = ExecutionOutcome(status=ExecutionStatus.OK, stdout="x" * (10 * 1024 * 1024))
    queued = body_of(execute(api, session_id, mode="async", code="print('x' * 10485760)"))

    drain(aws)

    done = body_of(get(queued["href"]))
    assert done["status"] == "succeeded"
    assert done["result"] is None
    assert done["result_bytes"] > 10 * 1024 * 1024
    assert f"/results/{TENANT}/{queued['execution_id']}.json" in done["result_url"]
    assert "X-Amz-Expires=" in done["result_url"]
    stored = aws.s3.get_object(
        Bucket=aws.results_bucket, Key=f"results/{TENANT}/{queued['execution_id']}.json"
    )
    assert json.loads(stored["Body"].read())["stdout"] == "x" * (10 * 1024 * 1024)


# --- idempotency ----------------------------------------------------------------------------------
def test_a_sync_execute_replays_its_first_answer_for_one_key(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    key = {"idempotency-key": "sync-1"}

    first = execute(api, session_id, key, code="print(1)")
    second = execute(api, session_id, key, code="print(1)")

    assert first["statusCode"] == second["statusCode"] == 200
    assert body_of(second) == body_of(first)
    assert executions_run(provider) == 1


def test_a_large_sync_answer_replays_whole_through_the_results_store(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    provider.next_outcome = ExecutionOutcome(status=ExecutionStatus.OK, stdout="y" * 1_000_000)
    key = {"idempotency-key": "sync-large"}

    first = body_of(execute(api, session_id, key, code="big"))
    second = body_of(execute(api, session_id, key, code="big"))

    assert second["stdout"] == first["stdout"] == "y" * 1_000_000
    assert second["execution_id"] == first["execution_id"]


def test_an_async_execute_replays_its_execution_for_one_key(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    key = {"idempotency-key": "async-1"}

    first = execute(api, session_id, key, mode="async", code="print(1)")
    drain(aws)
    second = execute(api, session_id, key, mode="async", code="print(1)")

    assert first["statusCode"] == second["statusCode"] == 202
    assert body_of(second)["execution_id"] == body_of(first)["execution_id"]
    assert body_of(second)["status"] == "succeeded"  # the state it has reached
    assert drain(aws) == []
    assert executions_run(provider) == 1


def test_a_key_reused_with_another_body_is_422(api: Api, provider: FakeSandboxProvider, aws: Aws) -> None:
    session_id = api.create_session()
    execute(api, session_id, {"idempotency-key": "reuse"}, code="print(1)")

    response = execute(api, session_id, {"idempotency-key": "reuse"}, code="print(2)")

    assert response["statusCode"] == 422
    assert body_of(response)["error"]["code"] == "idempotency_key_reused"


def test_a_file_write_replays_for_one_key_and_refuses_another_content(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()

    def write(content: bytes) -> dict:
        event = load_event("files_write", session_id, content=base64.b64encode(content).decode())
        event["headers"]["idempotency-key"] = "write-1"
        return invoke("files", event)

    first, second, other = write(b"one"), write(b"one"), write(b"two")

    assert first["statusCode"] == second["statusCode"] == 201
    assert body_of(second) == body_of(first)
    assert other["statusCode"] == 422


# --- the queue and the bus ------------------------------------------------------------------------
def message(session_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant_id": TENANT, "code": "print('from a queue')", **fields}
    if session_id is not None and "environment" not in fields:
        body["session_id"] = session_id
    return body


def send(aws: Aws, body: Any) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=text)


def test_a_batch_with_one_bad_message_fails_that_item_alone(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    send(aws, message(session_id, idempotency_key="good-1"))
    send(aws, "{not json")
    send(aws, message(session_id, idempotency_key="good-2"))
    batch = aws.messages(aws.queue_url)
    assert len(batch) == 3
    bad = next(m["MessageId"] for m in batch if m["Body"] == "{not json")

    failed = run_worker(sqs_event(batch))

    assert failed == [bad]
    assert executions_run(provider) == 2


def test_a_poison_message_ends_in_the_dead_letter_queue(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    send(aws, {"tenant_id": TENANT, "code": 42})  # code must be a string

    for _ in range(aws.max_receive_count):
        assert len(drain(aws)) == 1

    assert aws.messages(aws.queue_url) == []
    dead = aws.messages(aws.dead_letter_queue_url)
    assert [json.loads(m["Body"]) for m in dead] == [{"tenant_id": TENANT, "code": 42}]


def test_a_message_delivered_twice_runs_once(api: Api, provider: FakeSandboxProvider, aws: Aws) -> None:
    session_id = api.create_session()
    send(aws, message(session_id))
    delivered = aws.messages(aws.queue_url)

    assert run_worker(sqs_event(delivered)) == []
    assert run_worker(sqs_event(delivered)) == []  # the same message again, as SQS may deliver it

    assert executions_run(provider) == 1


def test_two_messages_with_one_idempotency_key_run_once(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    send(aws, message(session_id, idempotency_key="once"))
    send(aws, message(session_id, idempotency_key="once"))

    assert drain(aws) == []

    assert executions_run(provider) == 1
    execution_id = execution_id_for_message(TENANT, "once")
    assert body_of(get(f"/api/executions/{execution_id}"))["source"] == "sqs"


def test_an_execution_requested_event_runs_through_the_bus_rule(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    entry = {
        "EventBusName": aws.resources.event_bus_name,
        "Source": "my.producer",
        "DetailType": "ExecutionRequested",
        "Detail": json.dumps(message(session_id, idempotency_key="from-the-bus")),
    }
    assert aws.events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    assert drain(aws) == []

    done = body_of(get(f"/api/executions/{execution_id_for_message(TENANT, 'from-the-bus')}"))
    assert done["status"] == "succeeded"
    assert done["source"] == "events"
    assert done["result"]["stdout"] == "ran python: print('from a queue')\n"


def test_a_message_for_an_unknown_tenant_is_a_failed_item(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    api.create_session()
    send(aws, {"tenant_id": "nobody-at-all", "environment": "e2b-python", "code": "1"})

    assert len(drain(aws)) == 1
    assert provider.live_ids == {next(iter(provider.live_ids))}  # only the session created above


def test_a_message_naming_another_tenants_session_fails_as_session_not_found(
    api: Api, provider: FakeSandboxProvider, aws: Aws, table: Any
) -> None:
    session_id = api.create_session()  # tenant-example's
    table.put_item(Item={"pk": "TENANT#tenant-other", "sk": "TENANT", "created_at": 1})
    send(
        aws, {"tenant_id": "tenant-other", "session_id": session_id, "code": "1", "idempotency_key": "steal"}
    )

    assert drain(aws) == []

    done = body_of(
        get(f"/api/executions/{execution_id_for_message('tenant-other', 'steal')}", tenant="tenant-other")
    )
    assert done["status"] == "failed"
    assert done["failure"]["code"] == "session_not_found"
    assert executions_run(provider) == 0


def test_oversized_code_in_a_message_fails_the_execution_not_the_queue(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    # Over MAX_CODE_BYTES but inside SQS's 256 KiB: the deployment's limit lowered for the test.
    aws_limit = {"MAX_CODE_BYTES": "1024"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_limit.items():
            patch.setenv(name, value)
        wiring.reset(keep_overrides=True)
        send(aws, message(session_id, code="x" * 2048, idempotency_key="big"))
        assert drain(aws) == []
    wiring.reset(keep_overrides=True)

    done = body_of(get(f"/api/executions/{execution_id_for_message(TENANT, 'big')}"))
    assert done["status"] == "failed"
    assert done["failure"]["code"] == "payload_too_large"
    assert executions_run(provider) == 0


# --- completion out -------------------------------------------------------------------------------
def test_each_finished_execution_publishes_its_completion_event(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    ok = body_of(execute(api, session_id, code="print(1)"))
    raised = body_of(execute(api, session_id, mode="async", code="raise ValueError('x')"))
    drain(aws)

    events = {event["detail"]["execution_id"]: event for event in aws.completions()}

    assert events[ok["execution_id"]]["detail-type"] == "ExecutionCompleted"
    assert events[ok["execution_id"]]["source"] == "sandbox-gateway"
    detail = events[raised["execution_id"]]["detail"]
    assert events[raised["execution_id"]]["detail-type"] == "ExecutionFailed"
    assert detail["status"] == "failed"
    assert detail["outcome"] == "error"
    assert detail["tenant_id"] == TENANT
    assert detail["session_id"] == session_id
    assert detail["result"]["href"] == f"/api/executions/{raised['execution_id']}"


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what is POSTed to it."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

        self.received = received
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.httpd.shutdown()


def test_a_callback_is_signed_with_the_tenants_secret_and_verifies(
    api: Api, provider: FakeSandboxProvider, aws: Aws, receiver: Receiver
) -> None:
    session_id = api.create_session()
    queued = body_of(execute(api, session_id, mode="async", code="print(1)", callback_url=receiver.url))

    drain(aws)

    event = load_event("sessions_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/callbacks/secret"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /api/callbacks/secret"
    secret = body_of(invoke("execute", event))["secret"]
    [(headers, body)] = receiver.received
    assert verify_signature(secret, headers[SIGNATURE_HEADER.lower()], body, now=int(time.time()))
    assert not verify_signature(
        "another-secret", headers[SIGNATURE_HEADER.lower()], body, now=int(time.time())
    )
    delivered = json.loads(body)
    assert delivered["execution_id"] == queued["execution_id"]
    assert delivered["result"]["stdout"] == "ran python: print(1)\n"
    assert body_of(get(queued["href"]))["callback"]["status"] == "delivered"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.1.1/x",
        "ftp://example.com/x",
    ],
)
def test_a_callback_to_a_private_or_metadata_address_is_refused_at_once(
    api: Api, provider: FakeSandboxProvider, aws: Aws, url: str
) -> None:
    response = execute(api, api.create_session(), mode="async", code="1", callback_url=url)

    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "invalid_callback_url"
    assert aws.messages(aws.queue_url) == []


def test_a_queued_execution_waits_for_its_busy_session_instead_of_failing(
    api: Api, provider: FakeSandboxProvider, aws: Aws, table: Any
) -> None:
    session_id = api.create_session()
    # Another execution holds the session for two more seconds.
    table.update_item(
        Key=session_key(session_id),
        UpdateExpression="SET lease_id = :lease, lease_until = :until",
        ExpressionAttributeValues={":lease": "another", ":until": int(time.time()) + 2},
    )
    queued = body_of(execute(api, session_id, mode="async", code="print('after')"))

    drain(aws)

    assert body_of(get(queued["href"]))["status"] == "succeeded"
    assert executions_run(provider) == 1


def test_async_code_too_large_for_the_record_waits_in_the_results_store(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    session_id = api.create_session()
    code = "# " + "z" * 300_000  # over what a table item holds beside the record

    queued = body_of(execute(api, session_id, mode="async", code=code))
    pending = aws.s3.list_objects_v2(Bucket=aws.results_bucket, Prefix=f"requests/{TENANT}/")
    assert [o["Key"] for o in pending.get("Contents", [])] == [
        f"requests/{TENANT}/{queued['execution_id']}.json"
    ]
    drain(aws)

    assert body_of(get(queued["href"]))["status"] == "succeeded"
    [run] = [run for sandbox in provider.sandboxes.values() for run in sandbox.runs]
    assert run.code == code
    # Code and envs stay only until the run: then the request object is gone.
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=aws.results_bucket, Prefix="requests/")


def test_a_redelivery_runs_an_execution_its_first_delivery_recorded_but_never_started(
    api: Api, provider: FakeSandboxProvider, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = api.create_session()
    send(aws, message(session_id, idempotency_key="crashed"))
    delivered = aws.messages(aws.queue_url)
    store = wiring.execution_store()

    def die(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died between recording the execution and starting it")

    with monkeypatch.context() as patch:
        patch.setattr(store, "start", die)
        assert len(run_worker(sqs_event(delivered))) == 1
    assert executions_run(provider) == 0

    assert run_worker(sqs_event(delivered)) == []

    assert executions_run(provider) == 1
    done = body_of(get(f"/api/executions/{execution_id_for_message(TENANT, 'crashed')}"))
    assert done["status"] == "succeeded"


def test_an_async_execute_for_an_unknown_session_is_404_and_queues_nothing(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    response = execute(api, "ses_" + "9" * 28, mode="async", code="1")

    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "session_not_found"
    assert aws.messages(aws.queue_url) == []


def test_a_message_for_an_unknown_session_fails_its_execution_and_reports_it(
    api: Api, provider: FakeSandboxProvider, aws: Aws
) -> None:
    api.create_session()  # the tenant exists (its item is written with its first session or key)
    send(aws, message("ses_" + "9" * 28, idempotency_key="nowhere"))

    assert drain(aws) == []

    execution_id = execution_id_for_message(TENANT, "nowhere")
    done = body_of(get(f"/api/executions/{execution_id}"))
    assert (done["status"], done["failure"]["code"]) == ("failed", "session_not_found")
    [event] = [e for e in aws.completions() if e["detail"]["execution_id"] == execution_id]
    assert event["detail-type"] == "ExecutionFailed"
    assert event["detail"]["failure"]["code"] == "session_not_found"
