"""The edge as one contract: the routers each function serves, the request context around every
answer (Server-Timing), and the OpenAPI document served, committed and true to template.yaml."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sandbox_gateway.api.app import all_routers, build_app, openapi_document, openapi_text

from local.template import http_api_routes
from tests.integration.conftest import Api, body_of
from tests.support.events import load_event
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke, load_handler_module

ROOT = Path(__file__).resolve().parents[2]
SERVER_TIMING = re.compile(r"^total;dur=([\d.]+), store;dur=([\d.]+), sandbox;dur=([\d.]+)$")
HANDLER_MODULE = {
    "SessionsFunction": "sessions",
    "ExecuteFunction": "execute",
    "FilesFunction": "files",
    "MetaFunction": "meta",
}


def get_event(path: str, **headers: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("environments_list"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {path}"
    event["headers"].update(headers)
    return event


def timings_of(response: dict) -> dict[str, float]:
    found = SERVER_TIMING.match(response["headers"]["Server-Timing"])
    assert found, response["headers"]["Server-Timing"]
    return dict(zip(("total", "store", "sandbox"), map(float, found.groups()), strict=True))


# --- Server-Timing on every answer --------------------------------------------------------------
def test_a_create_reports_the_time_spent_in_the_store_and_the_sandbox(
    api: Api, provider: FakeSandboxProvider
) -> None:
    provider.during_create = lambda: time.sleep(0.05)

    response = api.call("sessions", "sessions_create")

    assert response["statusCode"] == 201
    spent = timings_of(response)
    assert spent["sandbox"] >= 50
    assert spent["store"] > 0  # the session is written before and after its sandbox starts
    assert spent["total"] >= spent["sandbox"] + spent["store"]


def test_an_execute_reports_its_sandbox_time(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    provider.during_next_call = lambda: time.sleep(0.03)

    response = api.call("execute", "execute_python", session_id)

    assert response["statusCode"] == 200
    assert timings_of(response)["sandbox"] >= 30


@pytest.mark.parametrize(
    ("function", "event_name", "status"),
    [
        ("sessions", "sessions_get", 404),  # a domain error
        ("sessions", "sessions_create_invalid_json", 400),  # refused before any route runs
        ("sessions", "sessions_create_unknown_field", 422),
    ],
)
def test_error_answers_carry_server_timing_and_the_request_id(
    api: Api, function: str, event_name: str, status: int
) -> None:
    response = api.call(function, event_name)

    assert response["statusCode"] == status
    assert timings_of(response)["sandbox"] == 0
    assert body_of(response)["error"]["request_id"] == "JKJaXmPLvHcESHA="


def test_an_unmatched_request_carries_server_timing(api: Api) -> None:
    response = invoke("meta", get_event("/nope"))

    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "route_not_found"
    assert timings_of(response)["store"] == 0


# --- each function serves its template routes, the whole app serves them all ------------------
def routes_of(app: Any) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every documented route of an app."""
    document = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def template_routes(function: str | None = None) -> set[tuple[str, str]]:
    return {
        (route.method, route.path.replace("{file_path+}", "{file_path}"))
        for route in http_api_routes()
        if not route.is_default
        and (function is None or route.function == function)
        and route.path not in {"/api/openapi.json", "/api/docs"}
    }


@pytest.mark.parametrize("function", sorted(HANDLER_MODULE))
def test_each_function_serves_exactly_the_routes_the_template_sends_it(function: str) -> None:
    app = load_handler_module(HANDLER_MODULE[function]).app
    assert routes_of(app) == template_routes(function)


def test_the_document_covers_every_route_of_the_template_and_nothing_else() -> None:
    assert routes_of(build_app(all_routers())) == template_routes()
    paths = openapi_document()["paths"]
    assert {(m.upper(), p) for p, ops in paths.items() for m in ops} == template_routes()


# --- the document itself -----------------------------------------------------------------------
def operation(method: str, path: str) -> dict[str, Any]:
    return openapi_document()["paths"][path][method]


def test_the_committed_document_is_the_one_the_code_builds() -> None:
    assert (ROOT / "openapi.json").read_text(encoding="utf-8") == openapi_text()


def test_success_statuses_are_the_real_ones() -> None:
    assert "201" in operation("post", "/api/sessions")["responses"]
    assert "201" in operation("post", "/api/e2b/files")["responses"]
    deleted = operation("delete", "/api/e2b/files/{session_id}/{file_path}")["responses"]
    assert "204" in deleted and deleted["204"]["content"] == {}
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            successes = [status for status in op["responses"] if status.startswith("2")]
            if (method, path) == ("post", "/api/e2b/execute"):
                assert successes == ["200", "202"]  # 202: "mode": "async"
                continue
            assert len(successes) == 1, (method, path, successes)


def test_every_error_status_is_documented_with_the_common_error_schema() -> None:
    for ops in openapi_document()["paths"].values():
        for op in ops.values():
            errors = {s: r for s, r in op["responses"].items() if not s.startswith("2")}
            assert {"422", "500"} <= set(errors)
            for status, answer in errors.items():
                schema = answer["content"]["application/json"]["schema"]
                ours = {"$ref": "#/components/schemas/ErrorResponse"}
                if status in {"401", "403"}:  # also API Gateway's own rejection, before any function
                    gateways = {"$ref": "#/components/schemas/GatewayRejectionResponse"}
                    assert schema["anyOf"] == [ours, gateways]
                else:
                    assert schema == ours


def test_the_file_path_is_a_real_path_parameter() -> None:
    for method in ("get", "delete"):
        names = [
            p["name"] for p in operation(method, "/api/e2b/files/{session_id}/{file_path}")["parameters"]
        ]
        assert names == ["session_id", "file_path"]


def test_create_documents_the_idempotency_key_header() -> None:
    (header,) = [p for p in operation("post", "/api/sessions")["parameters"] if p["in"] == "header"]
    assert header["name"].lower() == "idempotency-key" and header["required"] is False


def test_a_file_path_with_slashes_reaches_the_route_whole(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    api.call("files", "files_write", session_id, file_path="deep/er/note.txt")
    event = load_event("files_read", session_id)
    event["rawPath"] = f"/api/e2b/files/{session_id}/deep/er/note.txt"
    event["pathParameters"] = {"session_id": session_id, "file_path": "deep/er/note.txt"}

    response = invoke("files", event)

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["path"] == "/workspace/deep/er/note.txt"


# --- served --------------------------------------------------------------------------------------
def test_the_meta_function_serves_the_document() -> None:
    response = invoke("meta", get_event("/api/openapi.json"))

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == json.loads(openapi_text())
    assert json.loads(response["body"])["openapi"] == "3.1.0"


def test_the_meta_function_serves_swagger_ui_without_a_cdn() -> None:
    response = invoke("meta", get_event("/api/docs"))

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html"
    page = response["body"]
    assert "SwaggerUIBundle" in page and "/api/e2b/execute" in page
    assert "https://" not in page.split("<script")[0]  # no stylesheet or script fetched from elsewhere
