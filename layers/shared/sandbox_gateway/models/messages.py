"""The message contract of event-triggered executions, and one SQS record turned into work.

The queue carries two kinds of body:
- `{"execution_id": "exe_…", "tenant_id": "…"}`, sent by the API's async execute. The tenant
  only finds the record (stored under its tenant, written by the API alone): a forged pair finds
  nothing, or the execution the API queued, which then runs once as recorded. Nothing else in the
  message is trusted, so nothing else is allowed in it.
- An `ExecutionRequested` message (schemas/execution-requested.schema.json), sent by a producer
  to the queue itself, or put on the bus as an event's `detail` and forwarded by the rule (the
  record body is then the EventBridge envelope). It names its tenant; the service checks it exists.

Traps, each once a bug elsewhere:
- Errors name the field, never its value: a message carries code and env values (secrets).
- The body is parsed by the same bounded, strict parser as HTTP bodies (size, depth, duplicate
  keys, lone surrogates): `json.loads` alone recurses on deep nesting.
- Code size is NOT checked here: the limit is the tenant's quota, which the service applies.
- A redelivery must find the first delivery's execution, so the dedupe key comes from the
  message (its idempotency_key), else from the event id (the same on every delivery of one event,
  whatever SQS message carries it), else from the SQS message id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from sandbox_gateway.api.body import parse_json_body
from sandbox_gateway.models.api import MAX_ENVS, EnvName, SessionId, _bounded_map, _Request
from sandbox_gateway.models.errors import InvalidJson, InvalidMessage, PayloadTooLarge
from sandbox_gateway.models.execution_record import ExecutionSource

DETAIL_TYPE = "ExecutionRequested"
MAX_MESSAGE_BYTES = 1024 * 1024  # SQS's own ceiling; an EventBridge event is at most 256 KB
MAX_TIMEOUT_SECONDS = 900  # the longest a worker invocation can run; the service holds it lower
# The rule of `sgw admin` (the only way tenants are made): ids travel in table keys and labels.
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# adapters/idempotency.KEY_PATTERN (a test keeps them equal): printable ASCII, no spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
EXECUTION_ID_PATTERN = re.compile(r"^exe_[0-9a-f]{28}$")
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_ERRORS_SHOWN = 5
SCHEMA_ID = "https://sandbox-gateway.dev/schemas/execution-requested.schema.json"


def _text(value: str) -> str:
    # A lone surrogate is a valid JSON escape but no text any provider can run or store.
    if _SURROGATE.search(value):
        raise ValueError("holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text")
    return value


_NO_SURROGATES = AfterValidator(_text)


def _envs_schema(schema: dict[str, Any]) -> None:
    # Pydantic writes a key pattern as patternProperties, which lets a key that does not match it
    # through; propertyNames refuses it, as the model does. The count limit is a validator's.
    ((pattern, value),) = schema.pop("patternProperties").items()
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
    schema["additionalProperties"] = value
    schema["maxProperties"] = MAX_ENVS


class ExecutionRequestedMessage(_Request):
    """Run code for a tenant: in one of its sessions (`session_id`), or in a one-off session of
    `environment` that the worker creates and closes."""

    model_config = ConfigDict(
        title="ExecutionRequested",
        # Exactly one of the two, as a JSON Schema can say it; the model validator says it again.
        # Each branch needs the field's type too: an explicit null is "absent" to the model.
        json_schema_extra={
            "oneOf": [
                {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
                {"required": ["environment"], "properties": {"environment": {"type": "string"}}},
            ]
        },
    )

    # The patterns of tenant_id, session_id, env names and idempotency_key already exclude surrogates;
    # elsewhere the constraints come before the surrogate check (the other order drops them from the schema).
    tenant_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TENANT_ID_PATTERN)] = (
        Field(description="the tenant the execution runs for and is billed to; it must exist")
    )
    session_id: SessionId | None = Field(
        default=None,
        description="run in this existing session of the tenant (exactly one of session_id, environment)",
    )
    environment: Annotated[str, StringConstraints(min_length=1, max_length=64), _NO_SURROGATES] | None = (
        Field(
            default=None,
            description=(
                "run in a one-off session of this environment, created for the execution and closed after "
                "it (exactly one of session_id, environment)"
            ),
        )
    )
    code: Annotated[str, _NO_SURROGATES] = Field(
        description="the code to run; its size is held to the tenant's max_code_bytes quota", repr=False
    )
    language: Annotated[str, StringConstraints(max_length=32), _NO_SURROGATES] | None = Field(
        default=None, description="the language to run the code in; the environment's default if absent"
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description=(
            'stop the code after this many seconds, a JSON integer (10, not 10.0 or "10"); '
            "held to the tenant's max_execution_seconds"
        ),
    )
    # repr=False: values are often secrets, and a model's repr reaches debug logs.
    envs: dict[EnvName, Annotated[str, StringConstraints(max_length=4096), _NO_SURROGATES]] = Field(
        default_factory=dict,
        repr=False,
        description=f"environment variables for this execution only (at most {MAX_ENVS})",
        json_schema_extra=_envs_schema,
    )
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDEMPOTENCY_KEY_PATTERN)]
        | None
    ) = Field(
        default=None,
        description=(
            "the same key (per tenant) never runs twice, however often it is sent; without one, "
            "a redelivery of the same SQS message or EventBridge event is what runs once"
        ),
    )
    callback_url: Annotated[str, StringConstraints(min_length=1, max_length=2048), _NO_SURROGATES] | None = (
        Field(
            default=None,
            description=(
                "POST the finished execution here, signed with the tenant's callback secret "
                "(https; never a private, loopback or metadata address)"
            ),
        )
    )

    @field_validator("envs")
    @classmethod
    def _few_envs(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_map(value, MAX_ENVS, "envs")

    @model_validator(mode="after")
    def _one_place_to_run(self) -> ExecutionRequestedMessage:
        if (self.session_id is None) == (self.environment is None):
            raise ValueError(
                "name exactly one of session_id (an existing session) or environment (a one-off)"
            )
        return self


def execution_requested_schema() -> dict[str, Any]:
    """The message's JSON Schema (2020-12), as committed in schemas/ (scripts/generate_schemas.py)."""
    schema = ExecutionRequestedMessage.model_json_schema(mode="validation")
    schema.pop("title", None)
    schema.pop("description", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": DETAIL_TYPE,
        "description": (
            "Asks Sandbox Gateway to run code for a tenant. Send it to the execution queue as the "
            f"message body, or put it on the event bus as an event's detail with detail-type {DETAIL_TYPE}. "
            "Name exactly one of session_id (run in an existing session of the tenant) or environment "
            "(run in a one-off session the worker creates and closes). A message that does not match "
            "is not run: it is retried, then moved to the dead-letter queue."
        ),
        **schema,
    }


@dataclass(frozen=True)
class QueuedExecution:
    """The API's own message: run the execution it recorded (code and options are in the record)."""

    execution_id: str
    tenant_id: str  # where the record is; never an authority of its own


@dataclass(frozen=True)
class RequestedExecution:
    """A producer's message: `dedupe_key` is the same for every delivery of the same request."""

    message: ExecutionRequestedMessage
    source: ExecutionSource
    dedupe_key: str


def parse_record(body: str, message_id: str) -> QueuedExecution | RequestedExecution:
    """One SQS record's body as work for the worker, or InvalidMessage saying what is wrong.

    Told apart by their keys: an EventBridge envelope has detail-type and detail, the API's
    message has execution_id (no ExecutionRequested field is named so), anything else must be
    an ExecutionRequested message."""
    value = _bounded_json(body)
    if not isinstance(value, dict):
        raise InvalidMessage("the message body must be a JSON object")
    if "detail-type" in value or "detail" in value:
        return _from_event(value)
    if "execution_id" in value:
        return _queued(value)
    message = _message(value, where="")
    return RequestedExecution(message, ExecutionSource.SQS, message.idempotency_key or f"sqs:{message_id}")


def _bounded_json(body: str) -> Any:
    try:
        return parse_json_body(
            body, base64_encoded=False, content_type="application/json", max_bytes=MAX_MESSAGE_BYTES
        )
    except (InvalidJson, PayloadTooLarge) as exc:
        raise InvalidMessage(exc.message.replace("the request body", "the message body")) from None


def _from_event(envelope: dict[str, Any]) -> RequestedExecution:
    detail_type = envelope.get("detail-type")
    if detail_type != DETAIL_TYPE:
        # Not shown: it is the producer's text, and the rule forwards only ExecutionRequested.
        raise InvalidMessage(f"an event's detail-type must be {DETAIL_TYPE}")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise InvalidMessage("an event's detail must be a JSON object (the ExecutionRequested message)")
    event_id = envelope.get("id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise InvalidMessage("an event's id must be 1-128 printable ASCII characters")
    message = _message(detail, where="detail.")
    return RequestedExecution(message, ExecutionSource.EVENTS, message.idempotency_key or f"event:{event_id}")


def _queued(value: dict[str, Any]) -> QueuedExecution:
    if set(value) != {"execution_id", "tenant_id"}:
        # Anything beside the two would be something the worker trusts from a message.
        raise InvalidMessage("a queued execution's message holds execution_id and tenant_id, nothing else")
    execution_id, tenant_id = value["execution_id"], value["tenant_id"]
    if not isinstance(execution_id, str) or not EXECUTION_ID_PATTERN.fullmatch(execution_id):
        raise InvalidMessage("execution_id must be exe_ followed by 28 lowercase hex digits")
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise InvalidMessage(
            "tenant_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return QueuedExecution(execution_id, tenant_id)


def _message(value: dict[str, Any], *, where: str) -> ExecutionRequestedMessage:
    try:
        return ExecutionRequestedMessage.model_validate(value)
    except ValidationError as exc:
        problems = [f"{where}{_path(error['loc'])}: {error['msg']}" for error in exc.errors()]
        shown = "; ".join(problems[:MAX_ERRORS_SHOWN])
        more = f" (and {len(problems) - MAX_ERRORS_SHOWN} more)" if len(problems) > MAX_ERRORS_SHOWN else ""
        raise InvalidMessage(f"the ExecutionRequested message is invalid: {shown}{more}") from None


def _path(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(message)"
    # Below envs the path holds a variable's name: its value's neighbour, so only "envs" is shown.
    if loc[0] == "envs":
        return "envs"
    # An unknown field's name is the producer's text: shown, but short.
    return ".".join(str(part)[:64] for part in loc)
