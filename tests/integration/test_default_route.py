"""API Gateway's $default route: every request no route matches reaches the sessions function, which
answers 404 route_not_found in the common error shape, whatever the method, path or body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.template import http_api_routes
from tests.integration.conftest import Api
from tests.support.events import load_event
from tests.support.handlers import invoke


def default_route_event(method: str, path: str, body: str | None = None, content_type: str = "") -> dict:
    """What API Gateway sends the $default route's function: routeKey "$default", no path parameters."""
    event = load_event("sessions_list")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = body
        event["headers"]["content-type"] = content_type
    return event


def default_function() -> str:
    (route,) = [route for route in http_api_routes() if route.is_default]
    return {"MetaFunction": "meta", "SessionsFunction": "sessions"}[route.function]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("GET", "/nope", None, ""),
        ("GET", "/", None, ""),
        ("DELETE", "/api", None, ""),
        # Known paths with a method they do not serve: API Gateway has no 405.
        ("PUT", "/api/sessions", None, ""),
        ("PATCH", "/api/sessions/ses_x", None, ""),
        ("GET", "/api/e2b/execute", None, ""),
        ("GET", "/api/sessions/ses_x/keepalive", None, ""),
        ("POST", "/api/e2b/files/ses_x/a.txt", None, ""),
        ("OPTIONS", "/api/sessions", None, ""),  # not a CORS preflight: those API Gateway answers
        # Bodies a real route would refuse are not read on the way to the 404.
        ("POST", "/api/nope", '{"a": ', "text/plain"),
        ("POST", "/api/sessions/x", "[" * 100_000, "application/json"),
        ("PUT", "/api/sessions", '{"session_id": "a", "session_id": "b"}', "application/json"),
    ],
)
def test_default_route_answers_route_not_found_in_the_common_shape(
    api: Api, method: str, path: str, body: str | None, content_type: str
) -> None:
    response = invoke(default_function(), default_route_event(method, path, body, content_type))

    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/json"
    error: dict[str, Any] = json.loads(response["body"])["error"]
    assert error == {"code": "route_not_found", "message": "no such route", "request_id": "JKJaXmPLvHcESHA="}


@pytest.mark.parametrize("path", ["/nope", "/api/sessions"])
def test_default_route_answers_head_with_a_404_and_no_body(api: Api, path: str) -> None:
    response = invoke(default_function(), default_route_event("HEAD", path))

    assert response["statusCode"] == 404
    assert response["body"] == ""
