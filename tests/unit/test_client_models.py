"""The Python client cannot drift from the API: its models against openapi.json's components,
its exception classes against every error code the README documents and the server raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sandbox_gateway.models import errors as server_errors
from sandbox_gateway_client import Gateway, Session, models
from sandbox_gateway_client.errors import GatewayError, error_for_code

from tests.support.readme import documented_error_codes

SPEC = Path(__file__).resolve().parents[2] / "openapi.json"

# Client model -> the component schema it mirrors.
COMPONENT_OF: dict[type[BaseModel], str] = {
    models.SessionInfo: "SessionResponse",
    models.SessionList: "SessionListResponse",
    models.Environment: "EnvironmentResponse",
    models.EnvironmentList: "EnvironmentListResponse",
    models.Execution: "ExecuteResponse",
    models.ExecutionError: "ExecutionErrorResponse",
    models.FileEntry: "FileEntryResponse",
    models.FileList: "FileListResponse",
    models.FileContent: "FileContentResponse",
    models.WrittenFile: "FileWrittenResponse",
    models.ErrorBody: "ErrorResponse",
    models.ErrorInfo: "ErrorInfoResponse",
    models.ErrorProblem: "ErrorDetailResponse",
    models.Usage: "UsageResponse",
    models.Quotas: "QuotasResponse",
    models.UsageDay: "UsageDayResponse",
    models.QueuedExecution: "ExecutionQueuedResponse",
    models.ExecutionRecord: "ExecutionResponse",
    models.ExecutionFailure: "ExecutionFailureResponse",
    models.ExecutionPage: "ExecutionListResponse",
    models.CallbackSecret: "CallbackSecretResponse",
}
CLIENT_TO_COMPONENT = {model.__name__: component for model, component in COMPONENT_OF.items()}


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return json.loads(SPEC.read_text())["components"]["schemas"]


def shape(schema: dict[str, Any], rename: dict[str, str]) -> Any:
    """What a property holds, without descriptions, titles or bounds: the JSON type, item and
    value shapes, and which component a reference names."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return ("component", rename.get(name, name))
    if "anyOf" in schema or "oneOf" in schema:
        return frozenset(shape(option, rename) for option in schema.get("anyOf") or schema["oneOf"])
    kind = schema.get("type")
    if isinstance(kind, list):  # 3.1's ["string", "null"]
        return frozenset(shape(schema | {"type": one}, rename) for one in kind)
    if kind == "array":
        return ("array", shape(schema.get("items", {}), rename))
    if kind == "object":
        values = schema.get("additionalProperties")
        return ("object", shape(values, rename) if isinstance(values, dict) else None)
    return kind or "any"


def fields(schema: dict[str, Any], rename: dict[str, str]) -> dict[str, tuple[Any, bool]]:
    required = set(schema.get("required", ()))
    return {
        name: (shape(prop, rename), name in required) for name, prop in schema.get("properties", {}).items()
    }


@pytest.mark.parametrize("model", list(COMPONENT_OF), ids=lambda model: model.__name__)
def test_client_model_matches_its_openapi_component(
    model: type[BaseModel], components: dict[str, Any]
) -> None:
    component = components[COMPONENT_OF[model]]
    ours = model.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")

    assert fields(ours, CLIENT_TO_COMPONENT) == fields(component, {})


def test_every_response_component_has_a_client_model(components: dict[str, Any]) -> None:
    # API Gateway's bare {"message"} rejections become Unauthorized errors, not a model.
    responses = {name for name in components if name.endswith("Response")} - {"GatewayRejectionResponse"}

    assert responses <= set(COMPONENT_OF.values())


SESSION_ID = "ses_0123456789abcdef"
# Each request body the client sends, with every optional argument given -> its component.
REQUESTS: dict[str, tuple[Callable[[Gateway, Session], object], str]] = {
    "create_session": (
        lambda gw, _: gw.create_session(
            "e2b-python",
            provider="e2b",
            agent="tester",
            timeout_seconds=600,
            metadata={"k": "v"},
            envs={"A": "1"},
        ),
        "CreateSessionRequest",
    ),
    "run": (
        lambda _, s: s.run("1", language="python", timeout_seconds=5, envs={"A": "1"}, idempotency_key="k"),
        "ExecuteRequest",
    ),
    "session.submit": (
        lambda _, s: s.submit(
            "1",
            language="python",
            timeout_seconds=600,
            envs={"A": "1"},
            callback_url="https://hooks.example.com/done",
            idempotency_key="k",
        ),
        "ExecuteRequest",
    ),
    "gateway.submit": (
        lambda gw, _: gw.submit(
            "1",
            environment="e2b-python",
            language="python",
            timeout_seconds=600,
            envs={"A": "1"},
            callback_url="https://hooks.example.com/done",
            idempotency_key="k",
        ),
        "ExecuteRequest",
    ),
    "keep_alive": (lambda _, s: s.keep_alive(600), "KeepAliveRequest"),
    "files.write": (lambda _, s: s.files.write("a.txt", b"a", idempotency_key="k"), "WriteFileRequest"),
}


@pytest.mark.parametrize("call", list(REQUESTS))
def test_client_request_bodies_match_their_openapi_component(call: str, components: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.read()))
        return httpx.Response(599)  # no answer parses: only the request matters here

    gateway = Gateway("http://gateway.test", transport=httpx.MockTransport(record), max_retries=0)
    send, component_name = REQUESTS[call]
    with pytest.raises(GatewayError):
        send(gateway, gateway.session(SESSION_ID))

    component = components[component_name]
    assert set(sent[0]) <= set(component["properties"])
    assert set(component.get("required", ())) <= set(sent[0])


def test_every_documented_error_code_has_its_own_exception_class() -> None:
    codes = documented_error_codes()

    assert codes  # the README table was found
    missing = {code for code in codes if error_for_code(code) is GatewayError}
    assert not missing
    assert all(error_for_code(code).code == code for code in codes)


def every_server_error(cls: type[server_errors.DomainError]) -> list[type[server_errors.DomainError]]:
    return [cls, *(found for sub in cls.__subclasses__() for found in every_server_error(sub))]


@pytest.mark.parametrize(
    "server_error", every_server_error(server_errors.DomainError), ids=lambda cls: cls.code
)
def test_every_server_error_code_has_an_exception_class_in_the_same_family(
    server_error: type[server_errors.DomainError],
) -> None:
    ours = error_for_code(server_error.code)

    assert ours is not GatewayError
    # A server subclass (SessionClosed < SessionGone) stays a subclass on the client.
    for parent in server_error.__mro__[1:]:
        if issubclass(parent, server_errors.DomainError) and parent is not server_errors.DomainError:
            family = error_for_code(parent.code)
            if family is not GatewayError:
                assert issubclass(ours, family)
