"""parse_record: one SQS record body, from whoever sent it, as work for the worker or InvalidMessage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from sandbox_gateway.adapters.idempotency import KEY_PATTERN
from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import InvalidMessage
from sandbox_gateway.models.execution_record import ExecutionSource, execution_id_for_message
from sandbox_gateway.models.messages import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_MESSAGE_BYTES,
    ExecutionRequestedMessage,
    QueuedExecution,
    RequestedExecution,
    parse_record,
)

SESSION = "ses_0123456789abcdef0123456789ab"
EXECUTION = "exe_01a22be5a4ce0011223344556677"
SECRET_CODE = "print('CODE-SECRET-7f3a')"
SECRET_ENV = "ENV-SECRET-9c1d"
MESSAGE: dict[str, Any] = {"tenant_id": "tenant-example", "session_id": SESSION, "code": "print(1)"}


def message(**changes: Any) -> dict[str, Any]:
    return {**MESSAGE, **changes}


def envelope(detail: Any, *, event_id: str = "6a7e8feb-b491-4cf7-a9f1-bf3703467718", **changes: Any) -> str:
    value = {
        "version": "0",
        "id": event_id,
        "detail-type": "ExecutionRequested",
        "source": "com.example.orders",
        "account": "123456789012",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
        **changes,
    }
    return json.dumps(value)


def refused(body: str, message_id: str = "m-1") -> str:
    with pytest.raises(InvalidMessage) as caught:
        parse_record(body, message_id)
    assert caught.value.code == "invalid_message"
    return caught.value.message


# --- what each kind of body becomes --------------------------------------------------------------


def queued(**changes: Any) -> str:
    return json.dumps({"execution_id": EXECUTION, "tenant_id": "tenant-example", **changes})


def test_parse_record_of_the_apis_message_is_a_queued_execution() -> None:
    assert parse_record(queued(), "m-1") == QueuedExecution(EXECUTION, "tenant-example")


def test_parse_record_of_a_direct_message_is_a_requested_execution_from_sqs() -> None:
    work = parse_record(json.dumps(message(timeout_seconds=30, envs={"A": "1"})), "m-1")
    assert isinstance(work, RequestedExecution)
    assert work.source == ExecutionSource.SQS
    assert work.message.tenant_id == "tenant-example"
    assert work.message.session_id == SESSION
    assert work.message.environment is None
    assert work.message.timeout_seconds == 30
    assert work.message.envs == {"A": "1"}


def test_parse_record_of_an_event_is_a_requested_execution_from_the_bus() -> None:
    detail = {"tenant_id": "tenant-example", "environment": "e2b-python", "code": "print(1)"}
    work = parse_record(envelope(detail), "m-1")
    assert isinstance(work, RequestedExecution)
    assert work.source == ExecutionSource.EVENTS
    assert work.message.environment == "e2b-python"
    assert work.message.session_id is None


# --- dedupe keys: the same request gives the same key on every delivery -----------------------------


def test_parse_record_dedupe_key_of_a_direct_message_is_its_sqs_message_id() -> None:
    body = json.dumps(MESSAGE)
    first = parse_record(body, "msg-a")
    assert isinstance(first, RequestedExecution)
    assert first.dedupe_key == "sqs:msg-a"
    # A redelivery keeps its message id; the same body sent twice is two messages, two executions.
    assert parse_record(body, "msg-a") == first
    other = parse_record(body, "msg-b")
    assert isinstance(other, RequestedExecution)
    assert other.dedupe_key == "sqs:msg-b"


def test_parse_record_dedupe_key_of_an_event_is_its_event_id_whatever_sqs_message_carries_it() -> None:
    body = envelope(MESSAGE, event_id="evt-1")
    first = parse_record(body, "msg-a")
    second = parse_record(body, "msg-b")  # EventBridge delivered the event twice, in two messages
    assert isinstance(first, RequestedExecution) and isinstance(second, RequestedExecution)
    assert first.dedupe_key == second.dedupe_key == "event:evt-1"
    assert execution_id_for_message("tenant-example", first.dedupe_key) == execution_id_for_message(
        "tenant-example", second.dedupe_key
    )
    other = parse_record(envelope(MESSAGE, event_id="evt-2"), "msg-a")
    assert isinstance(other, RequestedExecution)
    assert other.dedupe_key == "event:evt-2"


def test_parse_record_dedupe_key_is_the_idempotency_key_for_every_source() -> None:
    keyed = message(idempotency_key="order-42")
    from_queue = parse_record(json.dumps(keyed), "msg-a")
    from_bus = parse_record(envelope(keyed, event_id="evt-1"), "msg-b")
    assert isinstance(from_queue, RequestedExecution) and isinstance(from_bus, RequestedExecution)
    # A producer that retries sends a new message or event: only its own key makes it the same.
    assert from_queue.dedupe_key == from_bus.dedupe_key == "order-42"


def test_message_idempotency_key_rule_is_the_http_headers_rule() -> None:
    assert KEY_PATTERN.pattern == IDEMPOTENCY_KEY_PATTERN


# --- bodies that are not a bounded JSON object ----------------------------------------------------


@pytest.mark.parametrize("body", ["not json", '{"tenant_id": }', "{'a': 1}", "NaN", "[1,]", "{} {}"])
def test_parse_record_refuses_what_is_not_json(body: str) -> None:
    assert "not valid JSON" in refused(body)


def test_parse_record_refuses_an_unbalanced_body() -> None:
    assert "unbalanced" in refused('{"tenant_id": "t"')


@pytest.mark.parametrize("body", ["", "[]", json.dumps([MESSAGE]), '"text"', "42", "null", "true"])
def test_parse_record_refuses_json_that_is_not_an_object(body: str) -> None:
    assert refused(body) == "the message body must be a JSON object"


def test_parse_record_refuses_a_body_over_the_limit_before_parsing_it() -> None:
    body = json.dumps(message(code="x" * MAX_MESSAGE_BYTES))
    assert "larger than" in refused(body)
    # Counted in UTF-8 bytes, not characters.
    wide = json.dumps(message(code="é" * (MAX_MESSAGE_BYTES // 2)), ensure_ascii=False)
    assert len(wide) < MAX_MESSAGE_BYTES < len(wide.encode())
    assert "larger than" in refused(wide)


@pytest.mark.parametrize("depth", [33, 100_000])
def test_parse_record_refuses_deep_nesting(depth: int) -> None:
    assert "deeper than 32" in refused("[" * depth + "]" * depth)
    nested = json.dumps(message(envs={})).replace("{}", "[" * depth + "]" * depth)
    assert "deeper than 32" in refused(nested)


def test_parse_record_refuses_a_repeated_key() -> None:
    body = '{"tenant_id": "tenant-example", "tenant_id": "tenant-other", "session_id": "s", "code": ""}'
    assert "repeats the key" in refused(body)


@pytest.mark.parametrize("field", ["code", "language", "environment", "callback_url"])
def test_parse_record_refuses_a_lone_surrogate(field: str) -> None:
    base = message() if field != "environment" else {**message(), "session_id": None}
    body = json.dumps({**base, field: "x\ud800y"})  # json.dumps writes it as the escape \ud800
    assert "\\ud800" in body
    assert "surrogate" in refused(body)
    # Unescaped in the body's own text (SQS would not carry it, a local poller might): not UTF-8.
    assert "not valid UTF-8" in refused(json.dumps({**base, field: "x\ud800y"}, ensure_ascii=False))


def test_message_model_refuses_a_lone_surrogate_given_as_python_text() -> None:
    # Not only the parser: a message built in code (the service's accept_message) is held too.
    for changes in ({"code": "\udc00"}, {"language": "py\ud800"}, {"envs": {"A": "\ud800"}}):
        with pytest.raises(ValidationError):
            ExecutionRequestedMessage.model_validate(message(**changes))


# --- messages that do not match the schema --------------------------------------------------------


def test_parse_record_refuses_an_unknown_field_naming_it() -> None:
    assert "priority: Extra inputs are not permitted" in refused(json.dumps(message(priority=1)))


def test_parse_record_refuses_a_string_for_a_number() -> None:
    reason = refused(json.dumps(message(timeout_seconds="10")))
    assert "timeout_seconds: Input should be a valid integer" in reason


@pytest.mark.parametrize("timeout", [True, 10.0, 0, 901])
def test_parse_record_refuses_other_timeouts(timeout: Any) -> None:
    assert "timeout_seconds" in refused(json.dumps(message(timeout_seconds=timeout)))


def test_parse_record_refuses_both_session_and_environment() -> None:
    reason = refused(json.dumps(message(environment="e2b-python")))
    assert "exactly one of session_id" in reason


@pytest.mark.parametrize("changes", [{"session_id": None}, {"session_id": None, "environment": None}])
def test_parse_record_refuses_neither_session_nor_environment(changes: dict[str, Any]) -> None:
    body = {key: value for key, value in message(**changes).items() if value is not None}
    assert "exactly one of session_id" in refused(json.dumps(body))
    assert "exactly one of session_id" in refused(json.dumps(message(**changes)))


def test_parse_record_refuses_a_message_without_tenant() -> None:
    body = {key: value for key, value in MESSAGE.items() if key != "tenant_id"}
    assert "tenant_id: Field required" in refused(json.dumps(body))


@pytest.mark.parametrize("tenant", ["", "tenant example", "../other", "t" * 65, "tenant-example\n"])
def test_parse_record_refuses_a_malformed_tenant(tenant: str) -> None:
    assert "tenant_id" in refused(json.dumps(message(tenant_id=tenant)))


def test_parse_record_reports_at_most_five_problems() -> None:
    body = message(tenant_id=1, session_id=2, code=3, language=4, timeout_seconds="5", callback_url=6, x=7)
    reason = refused(json.dumps(body))
    assert reason.count(": Input should be") + reason.count(": Extra inputs") == 5
    assert reason.endswith("(and 2 more)")


def test_parse_record_shortens_a_long_unknown_field_name() -> None:
    reason = refused(json.dumps(message(**{"f" * 5000: 1})))
    assert "f" * 64 + ": Extra inputs" in reason
    assert "f" * 65 not in reason


def test_parse_record_does_not_check_code_size_the_service_holds_it_to_the_tenants_quota() -> None:
    # The limit is per tenant (max_code_bytes), known only to the service: the message is parsed,
    # then the service records the execution as failed (payload_too_large) instead of dropping it.
    largest_default = Settings.model_fields["max_code_bytes"].default
    code = "x" * (largest_default + 1)
    work = parse_record(json.dumps(message(code=code)), "m-1")
    assert isinstance(work, RequestedExecution)
    assert work.message.code == code


# --- the API's own message --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "execution_id",
    [
        "exe_123",
        EXECUTION.upper().replace("EXE_", "exe_"),
        EXECUTION + "0",
        EXECUTION[:-1],
        EXECUTION + "\n",
        "ses_01a22be5a4ce0011223344556677",
        "",
        42,
        None,
        [EXECUTION],
    ],
)
def test_parse_record_refuses_a_bad_execution_id(execution_id: Any) -> None:
    reason = refused(queued(execution_id=execution_id))
    assert reason == "execution_id must be exe_ followed by 28 lowercase hex digits"


@pytest.mark.parametrize("tenant", ["", "-x", "a b", "t" * 65, "tenant\n", 7, None, ["tenant-example"]])
def test_parse_record_refuses_a_bad_tenant_beside_an_execution_id(tenant: Any) -> None:
    assert refused(queued(tenant_id=tenant)).startswith("tenant_id must be")


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"execution_id": EXECUTION}),  # the record cannot be found without its tenant
        queued(session_id=SESSION),
        queued(code="print(1)"),
        queued(callback_url="https://hooks.example.com/x"),
        json.dumps(message(execution_id=EXECUTION)),
    ],
)
def test_parse_record_refuses_anything_but_the_two_keys_beside_an_execution_id(body: str) -> None:
    # The record holds what to run; anything else in the message would be trusted from it.
    assert refused(body) == "a queued execution's message holds execution_id and tenant_id, nothing else"


# --- EventBridge envelopes --------------------------------------------------------------------------


@pytest.mark.parametrize("detail_type", ["ExecutionCompleted", "executionrequested", "", None, 1])
def test_parse_record_refuses_another_detail_type(detail_type: Any) -> None:
    reason = refused(envelope(MESSAGE, **{"detail-type": detail_type}))
    assert reason == "an event's detail-type must be ExecutionRequested"


def test_parse_record_refuses_an_envelope_missing_its_detail_type_or_detail() -> None:
    assert "detail-type" in refused(json.dumps({"id": "evt-1", "detail": MESSAGE}))
    assert "detail must be" in refused(json.dumps({"id": "evt-1", "detail-type": "ExecutionRequested"}))


@pytest.mark.parametrize("detail", [json.dumps(MESSAGE), [MESSAGE], None, 1, "x"])
def test_parse_record_refuses_a_detail_that_is_not_an_object(detail: Any) -> None:
    # put_events takes Detail as a JSON string; on the queue it arrives as an object.
    reason = refused(envelope(detail))
    assert reason == "an event's detail must be a JSON object (the ExecutionRequested message)"


@pytest.mark.parametrize("event_id", [None, "", 7, "has space", "e" * 129])
def test_parse_record_refuses_an_event_without_a_usable_id(event_id: Any) -> None:
    assert "an event's id" in refused(envelope(MESSAGE, event_id=event_id))


def test_parse_record_names_the_path_inside_the_detail() -> None:
    reason = refused(envelope(message(code=None)))
    assert "detail.code: Input should be a valid string" in reason


def test_parse_record_lets_the_rule_choose_the_source() -> None:
    # Any producer with PutEvents rights on the bus may send; the tenant must exist (the service).
    work = parse_record(envelope(MESSAGE, source="anything.else"), "m-1")
    assert isinstance(work, RequestedExecution)


# --- errors never echo code or env values ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(message(code=SECRET_CODE, timeout_seconds="10")),
        json.dumps(message(code=[SECRET_CODE])),
        json.dumps(message(code={"source": SECRET_CODE})),
        json.dumps(message(code=SECRET_CODE, envs={"TOKEN": SECRET_ENV, "bad-name": SECRET_ENV})),
        json.dumps(message(code=SECRET_CODE, envs={"TOKEN": 1, "OTHER": SECRET_ENV})),
        json.dumps(message(code=SECRET_CODE, envs={"TOKEN": SECRET_ENV * 500})),
        json.dumps(message(code=SECRET_CODE, envs={SECRET_ENV.replace("-", "_"): [SECRET_ENV]})),
        json.dumps(message(code=SECRET_CODE, language=SECRET_CODE * 2)),
        json.dumps(message(code=SECRET_CODE, environment="e2b-python")),
        json.dumps(message(code=SECRET_CODE + "\ud800")),
        json.dumps(message(code=SECRET_CODE))[:-1],
        json.dumps(message(code=SECRET_CODE)).replace('"code"', '"tenant_id"'),
        envelope(message(code=SECRET_CODE, envs={"A": SECRET_ENV}, timeout_seconds=0)),
        envelope(message(code=SECRET_CODE), **{"detail-type": SECRET_CODE}),
        queued(execution_id=SECRET_CODE),
        queued(tenant_id=SECRET_CODE),
        queued(code=SECRET_CODE),
    ],
)
def test_parse_record_errors_never_echo_code_or_env_values(body: str) -> None:
    reason = refused(body)
    assert "SECRET" not in reason


def test_message_repr_leaves_out_code_and_env_values() -> None:
    parsed = ExecutionRequestedMessage.model_validate(message(code=SECRET_CODE, envs={"TOKEN": SECRET_ENV}))
    assert "SECRET" not in repr(parsed)
    assert "SECRET" not in str(parsed)
