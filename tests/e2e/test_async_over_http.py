"""Async and event-triggered executions on the local stack: the gateway, the worker fed by the
queue poller, moto's SQS/EventBridge/S3 on its own loopback port and the local E2B host."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from sandbox_gateway.models.execution_record import execution_id_for_message
from sandbox_gateway_client import verify_signature

from local.aws import aws_client
from local.stack import Stack
from tests.e2e.conftest import Client

TERMINAL = {"succeeded", "failed", "timed_out"}


def aws(stack: Stack, service: str) -> Any:
    assert stack.aws_url is not None
    return aws_client(service, stack.aws_url)


def wait_for(client: Client, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.request("GET", f"/api/executions/{execution_id}")
        if response.status_code == 200 and response.json()["status"] in TERMINAL:
            return dict(response.json())
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s")


def submit(client: Client, **body: Any) -> dict[str, Any]:
    response = client.request("POST", "/api/e2b/execute", json={"mode": "async", **body})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/executions/{response.json()['execution_id']}"
    return dict(response.json())


def test_async_round_trip_keeps_the_sessions_state(client: Client) -> None:
    session_id = client.create_session()
    assert client.execute(session_id, "x = 21").status_code == 200

    queued = submit(client, session_id=session_id, code="print(x * 2)")
    done = wait_for(client, queued["execution_id"])

    assert done["status"] == "succeeded"
    assert done["result"]["stdout"] == "42\n"
    listed = client.request("GET", f"/api/sessions/{session_id}/executions").json()["executions"]
    assert listed[0]["execution_id"] == queued["execution_id"]
    assert len(listed) == 2


def test_a_one_off_async_execution_leaves_no_sandbox(client: Client, stack: Stack) -> None:
    queued = submit(client, environment="e2b-python", code="print('once')")
    done = wait_for(client, queued["execution_id"])

    assert done["status"] == "succeeded"
    assert done["result"]["stdout"] == "once\n"
    session = client.request("GET", f"/api/sessions/{done['session_id']}").json()
    assert session["status"] == "closed"
    assert session["agent"] == "async-worker"


def test_a_10_mb_result_is_fetched_through_its_presigned_url(client: Client, stack: Stack) -> None:
    session_id = client.create_session()
    queued = submit(client, session_id=session_id, code="print('y' * (10 * 1024 * 1024), end='')")
    done = wait_for(client, queued["execution_id"], timeout=120)

    assert done["status"] == "succeeded", done
    assert done["result"] is None and done["result_bytes"] > 10 * 1024 * 1024
    assert done["result_url"].startswith(f"{stack.aws_url}/")  # loopback: the local stack's S3
    # A presigned URL carries its own authority: no API key goes with it.
    fetched = requests.get(done["result_url"], timeout=60)
    assert fetched.status_code == 200
    result = fetched.json()
    assert result["stdout"] == "y" * (10 * 1024 * 1024)
    assert result["execution_id"] == queued["execution_id"]


def test_a_message_sent_to_the_queue_runs_once_and_publishes_its_completion(
    client: Client, stack: Stack
) -> None:
    session_id = client.create_session()
    key = f"e2e-{time.time_ns()}"
    message = {
        "tenant_id": stack.tenant_id,
        "session_id": session_id,
        "code": "print(6 * 7)",
        "idempotency_key": key,
    }
    sqs = aws(stack, "sqs")
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(message))
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(message))  # a producer's retry

    execution_id = execution_id_for_message(stack.tenant_id, key)
    done = wait_for(client, execution_id)

    assert done["status"] == "succeeded"
    assert done["result"]["stdout"] == "42\n"
    listed = client.request("GET", f"/api/sessions/{session_id}/executions").json()["executions"]
    assert [e["execution_id"] for e in listed] == [execution_id]  # once, for two messages
    assert completion_of(stack, execution_id)["detail-type"] == "ExecutionCompleted"


def completion_of(stack: Stack, execution_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The completion event of `execution_id`, read from the local completions queue."""
    sqs = aws(stack, "sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sqs.receive_message(QueueUrl=stack.completions_queue_url, MaxNumberOfMessages=10)
        for message in found.get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["execution_id"] == execution_id:
                return dict(event)
            # An earlier execution's event (every sync execute of the suite publishes one too).
            sqs.delete_message(QueueUrl=stack.completions_queue_url, ReceiptHandle=message["ReceiptHandle"])
        time.sleep(0.2)
    raise AssertionError(f"no completion event for {execution_id}")


def test_an_execution_requested_event_on_the_bus_runs(client: Client, stack: Stack) -> None:
    session_id = client.create_session()
    key = f"bus-{time.time_ns()}"
    detail = {"tenant_id": stack.tenant_id, "session_id": session_id, "code": "1/0", "idempotency_key": key}
    entry = {
        "EventBusName": stack.event_bus_name,
        "Source": "e2e.producer",
        "DetailType": "ExecutionRequested",
        "Detail": json.dumps(detail),
    }
    assert aws(stack, "events").put_events(Entries=[entry])["FailedEntryCount"] == 0

    done = wait_for(client, execution_id_for_message(stack.tenant_id, key))

    assert done["status"] == "failed"
    assert done["source"] == "events"
    assert done["result"]["error"]["name"] == "ZeroDivisionError"
    event = completion_of(stack, done["execution_id"])
    assert event["detail-type"] == "ExecutionFailed"
    assert event["detail"]["outcome"] == "error"


def test_a_poison_message_ends_in_the_dead_letter_queue(stack: Stack) -> None:
    sqs = aws(stack, "sqs")
    marker = f"poison-{time.time_ns()}"
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"not": "a message", "marker": marker}))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10)
        bodies = [json.loads(m["Body"]) for m in found.get("Messages", [])]
        if any(body.get("marker") == marker for body in bodies):
            return
        time.sleep(0.5)
    raise AssertionError("the poison message never reached the dead-letter queue")


def test_ten_concurrent_executes_with_one_key_run_once(client: Client) -> None:
    session_id = client.create_session()
    key = f"race-{time.time_ns()}"
    body = {
        "session_id": session_id,
        "code": "import time; time.sleep(1); print('ran')",
        "language": "python",
    }

    def call(_: int) -> requests.Response:
        return client.request("POST", "/api/e2b/execute", json=body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(call, range(10)))

    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}, [a.text for a in answers]
    ran = {a.json()["execution_id"] for a in answers if a.status_code == 200}
    assert len(ran) == 1  # every 200 is the one execution (the first, or a replay of it)
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.json()["error"]["code"] == "idempotency_key_in_use"
        assert busy.headers["Retry-After"]
    listed = client.request("GET", f"/api/sessions/{session_id}/executions").json()["executions"]
    assert len(listed) == 1


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        received, arrived = self.received, self.arrived

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()
                arrived.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.httpd.shutdown()


def test_a_callback_arrives_signed_with_the_tenants_secret(client: Client, receiver: Receiver) -> None:
    session_id = client.create_session()
    secret = client.request("GET", "/api/callbacks/secret").json()["secret"]

    queued = submit(client, session_id=session_id, code="print('called back')", callback_url=receiver.url)

    assert receiver.arrived.wait(60)
    [(headers, body)] = receiver.received
    assert verify_signature(secret, headers["sandbox-gateway-signature"], body)
    assert headers["sandbox-gateway-execution-id"] == queued["execution_id"]
    delivered = json.loads(body)
    assert delivered["status"] == "succeeded"
    assert delivered["result"]["stdout"] == "called back\n"
    assert wait_for(client, queued["execution_id"])["status"] == "succeeded"


def test_a_callback_to_a_private_address_is_refused(client: Client) -> None:
    response = client.request(
        "POST",
        "/api/e2b/execute",
        json={
            "mode": "async",
            "environment": "e2b-python",
            "code": "1",
            "callback_url": "https://10.1.2.3/hook",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_callback_url"
