"""schemas/execution-requested.schema.json: generated from the model, and the two agree.

A producer validates with the schema, the worker with the model: a message one accepts and the
other refuses would be sent in good faith and never run. So both see the same messages here,
good and bad, and the events/ samples producers copy must pass both.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from sandbox_gateway.models.execution_record import ExecutionSource
from sandbox_gateway.models.messages import (
    DETAIL_TYPE,
    MAX_TIMEOUT_SECONDS,
    SCHEMA_ID,
    ExecutionRequestedMessage,
    QueuedExecution,
    RequestedExecution,
    parse_record,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "execution-requested.schema.json"
EVENTS = ROOT / "events"
SESSION = "ses_0123456789abcdef0123456789ab"


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_schemas.py"
    spec = importlib.util.spec_from_file_location("generate_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_accepts(validator: Draft202012Validator, message: Any) -> bool:
    return not list(validator.iter_errors(message))


def model_accepts(message: Any) -> bool:
    try:
        ExecutionRequestedMessage.model_validate(message)
    except ValidationError:
        return False
    return True


# --- the committed file is the generated one -----------------------------------------------------


def test_message_schema_committed_file_is_generated_from_the_model() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == _generator().schema_text("execution-requested.schema.json"), (
        "schemas/execution-requested.schema.json is stale; run `make schemas`"
    )


def test_message_schema_check_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _generator()
    monkeypatch.setattr(gen, "SCHEMAS", tmp_path)
    assert gen.main(["--check"]) == 1  # missing
    (tmp_path / "execution-requested.schema.json").write_text("{}\n", encoding="utf-8")
    assert gen.main(["--check"]) == 1  # different
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_message_schema_names_itself_and_says_where_the_message_goes() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"] == DETAIL_TYPE
    assert "queue" in schema["description"]
    assert f"detail-type {DETAIL_TYPE}" in schema["description"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"tenant_id", "code"}
    assert [branch["required"] for branch in schema["oneOf"]] == [["session_id"], ["environment"]]
    # Every field is described: the schema is the producers' documentation.
    assert all(prop.get("description") for prop in schema["properties"].values())


# --- the samples producers copy --------------------------------------------------------------------


def _sqs_records() -> list[tuple[str, dict[str, Any]]]:
    records = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        for record in event.get("Records", []):
            if record.get("eventSource") == "aws:sqs":
                records.append((path.name, record))
    return records


def test_message_schema_samples_exist_for_every_kind_of_record() -> None:
    names = {name for name, _ in _sqs_records()}
    assert {
        "sqs-execution-requested.json",
        "sqs-execution-queued.json",
        "eventbridge-execution-requested.json",
    } <= names


@pytest.mark.parametrize(("name", "record"), _sqs_records(), ids=lambda value: str(value)[:40])
def test_message_schema_every_sqs_sample_parses_and_validates(
    validator: Draft202012Validator, name: str, record: dict[str, Any]
) -> None:
    work = parse_record(record["body"], record["messageId"])
    body = json.loads(record["body"])
    if isinstance(work, QueuedExecution):
        assert body == {"execution_id": work.execution_id, "tenant_id": "tenant-example"}
        return
    assert isinstance(work, RequestedExecution)
    message = body["detail"] if "detail-type" in body else body
    assert not list(validator.iter_errors(message)), name
    assert work.message.tenant_id == "tenant-example"
    assert work.message.session_id in (None, "ses_0000000000000000000000000000")
    expected = ExecutionSource.EVENTS if "detail-type" in body else ExecutionSource.SQS
    assert work.source == expected


def test_message_schema_put_events_entry_sample_validates_and_parses_once_delivered(
    validator: Draft202012Validator,
) -> None:
    entry = json.loads((EVENTS / "eventbridge-put-events-entry.json").read_text(encoding="utf-8"))
    assert entry["DetailType"] == DETAIL_TYPE
    detail = json.loads(entry["Detail"])  # put_events takes the detail as a JSON string
    assert schema_accepts(validator, detail)
    # What the rule hands the queue: the envelope EventBridge builds around the detail.
    envelope = {
        "version": "0",
        "id": "0d3c2f4e-0000-4000-8000-000000000001",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    work = parse_record(json.dumps(envelope), "b7c1d2e3-0000-4000-8000-000000000002")
    assert isinstance(work, RequestedExecution)
    assert work.source == ExecutionSource.EVENTS
    assert work.message.model_dump(exclude_defaults=True) == detail


def test_message_schema_eventbridge_sample_carries_the_put_events_detail() -> None:
    entry = json.loads((EVENTS / "eventbridge-put-events-entry.json").read_text(encoding="utf-8"))
    (record,) = json.loads((EVENTS / "eventbridge-execution-requested.json").read_text(encoding="utf-8"))[
        "Records"
    ]
    envelope = json.loads(record["body"])
    assert envelope["detail-type"] == entry["DetailType"]
    assert envelope["source"] == entry["Source"]
    assert envelope["detail"] == json.loads(entry["Detail"])


# --- the schema and the model agree ----------------------------------------------------------------

BASE: dict[str, Any] = {"tenant_id": "tenant-example", "session_id": SESSION, "code": "print(1)"}
ONE_OFF: dict[str, Any] = {"tenant_id": "tenant-example", "environment": "e2b-python", "code": "print(1)"}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    message = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _DROP:
            message.pop(key, None)
        else:
            message[key] = value
    return message


_DROP = object()

GOOD: dict[str, dict[str, Any]] = {
    "session": BASE,
    "one-off": ONE_OFF,
    "every field": _with(
        BASE,
        language="python",
        timeout_seconds=60,
        envs={"A": "1", "_B2": ""},
        idempotency_key="order-42",
        callback_url="https://hooks.example.com/x",
    ),
    "optional fields null": _with(
        BASE, language=None, timeout_seconds=None, idempotency_key=None, callback_url=None
    ),
    "environment null beside session": _with(BASE, environment=None),
    "session null beside environment": _with(ONE_OFF, session_id=None),
    "empty code": _with(BASE, code=""),
    "empty language": _with(BASE, language=""),
    "shortest timeout": _with(BASE, timeout_seconds=1),
    "longest timeout": _with(BASE, timeout_seconds=MAX_TIMEOUT_SECONDS),
    "one-character tenant": _with(BASE, tenant_id="a"),
    "64-character tenant": _with(BASE, tenant_id="t" * 64),
    "dotted tenant": _with(BASE, tenant_id="acme.prod_eu-1"),
    "32 envs": _with(BASE, envs={f"V{i}": "x" for i in range(32)}),
    "longest env value": _with(BASE, envs={"A": "x" * 4096}),
    "longest idempotency key": _with(BASE, idempotency_key="~" * 128),
    "unicode code": _with(BASE, code="print('héllo 😀')"),
}

BAD: dict[str, Any] = {
    "not an object": ["tenant-example"],
    "empty object": {},
    "missing tenant": _with(BASE, tenant_id=_DROP),
    "missing code": _with(BASE, code=_DROP),
    "both session and environment": _with(BASE, environment="e2b-python"),
    "neither session nor environment": _with(BASE, session_id=_DROP),
    "both null": _with(BASE, session_id=None, environment=None),
    "unknown field": _with(BASE, priority=1),
    "execution_id beside a message": _with(BASE, execution_id="exe_01a22be5a4ce0011223344556677"),
    "tenant null": _with(BASE, tenant_id=None),
    "tenant empty": _with(BASE, tenant_id=""),
    "tenant too long": _with(BASE, tenant_id="t" * 65),
    "tenant with a space": _with(BASE, tenant_id="tenant example"),
    "tenant with a colon": _with(BASE, tenant_id="tenant:example"),
    "tenant starting with a dash": _with(BASE, tenant_id="-tenant"),
    "tenant a number": _with(BASE, tenant_id=42),
    "session path": _with(BASE, session_id="ses/../x"),
    "session empty": _with(BASE, session_id=""),
    "session a number": _with(BASE, session_id=7),
    "environment empty": _with(ONE_OFF, environment=""),
    "environment too long": _with(ONE_OFF, environment="e" * 65),
    "code a number": _with(BASE, code=1),
    "code null": _with(BASE, code=None),
    "code a list": _with(BASE, code=["print(1)"]),
    "language too long": _with(BASE, language="l" * 33),
    "timeout a string": _with(BASE, timeout_seconds="10"),
    "timeout a boolean": _with(BASE, timeout_seconds=True),
    "timeout zero": _with(BASE, timeout_seconds=0),
    "timeout negative": _with(BASE, timeout_seconds=-5),
    "timeout too long": _with(BASE, timeout_seconds=MAX_TIMEOUT_SECONDS + 1),
    "timeout a fraction": _with(BASE, timeout_seconds=1.5),
    "envs a list": _with(BASE, envs=["A=1"]),
    "envs too many": _with(BASE, envs={f"V{i}": "x" for i in range(33)}),
    "env name with a dash": _with(BASE, envs={"A-B": "1"}),
    "env name starting with a digit": _with(BASE, envs={"1A": "1"}),
    "env name empty": _with(BASE, envs={"": "1"}),
    "env value a number": _with(BASE, envs={"A": 1}),
    "env value too long": _with(BASE, envs={"A": "x" * 4097}),
    "idempotency key with a space": _with(BASE, idempotency_key="order 42"),
    "idempotency key empty": _with(BASE, idempotency_key=""),
    "idempotency key too long": _with(BASE, idempotency_key="k" * 129),
    "idempotency key not ASCII": _with(BASE, idempotency_key="clé"),
    "callback url empty": _with(BASE, callback_url=""),
    "callback url too long": _with(BASE, callback_url="https://h.example/" + "a" * 2040),
    "callback url an object": _with(BASE, callback_url={"url": "https://h.example/"}),
}


@pytest.mark.parametrize("message", GOOD.values(), ids=GOOD.keys())
def test_message_schema_and_model_both_accept(
    validator: Draft202012Validator, message: dict[str, Any]
) -> None:
    assert schema_accepts(validator, message)
    assert model_accepts(message)
    assert isinstance(parse_record(json.dumps(message), "m-1"), RequestedExecution)


@pytest.mark.parametrize("message", BAD.values(), ids=BAD.keys())
def test_message_schema_and_model_both_refuse(validator: Draft202012Validator, message: Any) -> None:
    assert not schema_accepts(validator, message)
    assert not model_accepts(message)


# Where they cannot agree, the model (what the worker runs) is the stricter, and it is said here.
@pytest.mark.parametrize(
    ("message", "why"),
    [
        # JSON Schema counts 10.0 as an integer; the model is strict like the HTTP API's.
        (_with(BASE, timeout_seconds=10.0), "a JSON integer is written 10, not 10.0"),
        # Python's jsonschema matches patterns with re.search, where $ also matches before a
        # final newline; the model's (and JavaScript's) $ does not.
        (_with(BASE, tenant_id="tenant-example\n"), "a trailing newline"),
        # No JSON Schema keyword refuses a lone surrogate; the parser and the model do.
        (_with(BASE, code="print('\ud800')"), "a lone surrogate"),
    ],
    ids=["integral float", "trailing newline", "lone surrogate"],
)
def test_message_schema_is_looser_than_the_model_only_where_it_cannot_say_more(
    validator: Draft202012Validator, message: dict[str, Any], why: str
) -> None:
    assert schema_accepts(validator, message), why
    assert not model_accepts(message), why
