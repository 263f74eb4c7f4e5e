"""The local gateway picks routes as API Gateway does: what no route matches goes to $default."""

from __future__ import annotations

import pytest

from local.gateway import RequestData, build_event, find_route
from local.template import http_api_routes, load_template


def request(method: str, path: str) -> RequestData:
    return RequestData(method, path, "", [("Host", "local")], b"", "127.0.0.1")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("PUT", "/api/sessions"),
        ("GET", "/api/e2b/execute"),
        ("HEAD", "/api/sessions"),
        ("OPTIONS", "/api/sessions"),
        ("GET", "/api/sessions/a/b"),
        ("GET", "$default"),
    ],
)
def test_find_route_sends_unmatched_requests_to_the_default_route(method: str, path: str) -> None:
    found = find_route(http_api_routes(), method, path)

    assert found is not None
    route, params = found
    assert (route.route_key, route.function, params) == ("$default", "SessionsFunction", {})
    event = build_event(route, params, request(method, path))
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "$default"
    assert event["requestContext"]["http"]["method"] == method
    assert event["rawPath"] == path
    assert "pathParameters" not in event


def test_find_route_prefers_every_declared_route_to_the_default_one() -> None:
    routes = http_api_routes()

    for route in routes:
        if route.is_default:
            continue
        path = route.path.replace("{session_id}", "ses_x").replace("{file_path+}", "a/b.txt")
        found = find_route(routes, route.method, path)
        assert found is not None and found[0] == route, route.route_key


def test_find_route_without_a_default_route_finds_nothing_as_api_gateway() -> None:
    template = load_template()
    del template["Resources"]["SessionsFunction"]["Properties"]["Events"]["DefaultRoute"]

    assert find_route(http_api_routes(template), "GET", "/nope") is None
