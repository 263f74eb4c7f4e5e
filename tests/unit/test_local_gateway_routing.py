"""The local gateway picks routes as API Gateway does: what no route matches goes to $default."""

from __future__ import annotations

import pytest

from local.gateway import RequestData, build_event, find_route
from local.template import CorsConfiguration, cors_configuration, http_api_routes, load_template


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
    assert (route.route_key, route.function, params) == ("$default", "MetaFunction", {})
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
    del template["Resources"]["MetaFunction"]["Properties"]["Events"]["DefaultRoute"]

    assert find_route(http_api_routes(template), "GET", "/nope") is None


def test_cors_configuration_is_the_templates_with_parameter_defaults() -> None:
    cors = cors_configuration()

    assert cors is not None
    assert cors.allow_origins == ("*",)  # CorsAllowOrigins' default
    assert cors.allow_methods == ("GET", "POST", "DELETE", "OPTIONS")
    assert "Idempotency-Key" in cors.allow_headers
    assert (cors.expose_headers, cors.max_age, cors.allow_credentials) == (
        ("Retry-After", "Server-Timing"),
        600,
        False,
    )


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (("*",), "https://app.example", True),
        (("https://app.example",), "https://app.example", True),
        (("https://app.example",), "https://evil.example", False),
        (("https://*",), "https://app.example", True),
        (("https://*",), "http://app.example", False),
    ],
)
def test_cors_allows_origin_as_api_gateway_patterns(
    allowed: tuple[str, ...], origin: str, expected: bool
) -> None:
    cors = CorsConfiguration(allowed, ("GET",), (), (), None, False)
    assert cors.allows_origin(origin) is expected


def test_cors_configuration_is_none_without_one_in_the_template() -> None:
    template = load_template()
    del template["Resources"]["Api"]["Properties"]["CorsConfiguration"]

    assert cors_configuration(template) is None
