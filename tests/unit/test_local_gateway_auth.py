"""The local gateway authenticates as API Gateway does: template.yaml's Lambda authorizer, its
identity header, its cache TTL and its public routes."""

from __future__ import annotations

import copy
import http.client
import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from local.gateway import Authorization, Gateway, RequestData, build_event, find_route
from local.template import (
    Route,
    cors_configuration,
    http_api_authorizers,
    http_api_routes,
    load_template,
)

ALLOW = {"isAuthorized": True, "context": {"tenant_id": "acme", "key_id": "k1", "scopes": "sessions"}}


class FakePools:
    """Stands in for the worker pools: answers the authorizer with `answer` and records calls."""

    def __init__(self, answer: Any = ALLOW) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, route: Route, event: dict[str, Any]) -> Any:
        self.calls.append((route.function, copy.deepcopy(event)))
        if route.function == "AuthorizerFunction":
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer
        return {"statusCode": 200, "body": json.dumps(event.get("requestContext", {}).get("authorizer"))}

    def authorizer_calls(self) -> list[dict[str, Any]]:
        return [event for function, event in self.calls if function == "AuthorizerFunction"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def route_event(method: str, path: str, headers: dict[str, str], query: str = "") -> tuple[Route, dict]:
    found = find_route(http_api_routes(), method, path)
    assert found is not None
    route, params = found
    request = RequestData(method, path, query, [("Host", "local"), *headers.items()], b"", "127.0.0.1")
    return route, build_event(route, params, request)


# --- template.yaml ------------------------------------------------------------------------------
def test_the_authorizer_is_the_templates_with_parameter_defaults() -> None:
    authorizers = http_api_authorizers()

    assert list(authorizers) == ["ApiKeyAuthorizer"]
    authorizer = authorizers["ApiKeyAuthorizer"]
    assert authorizer.function == "AuthorizerFunction"  # FunctionArn: !GetAtt AuthorizerFunction.Arn
    assert authorizer.handler == "app.lambda_handler"
    assert authorizer.code_dir.name == "authorizer"
    assert authorizer.timeout_seconds == 10
    assert authorizer.identity_headers == ("authorization",)
    assert authorizer.cache_seconds == 300  # !Ref AuthorizerCacheSeconds: its Default
    assert (authorizer.simple_responses, authorizer.payload_format_version) == (True, "2.0")


def test_every_route_needs_the_key_but_the_document_and_swagger_ui() -> None:
    routes = http_api_routes()

    public = sorted(r.route_key for r in routes if r.authorizer is None)
    assert public == ["GET /api/docs", "GET /api/openapi.json"]
    assert {r.authorizer for r in routes if r.authorizer is not None} == {"ApiKeyAuthorizer"}
    assert any(r.is_default and r.authorizer == "ApiKeyAuthorizer" for r in routes)


def test_a_route_may_name_its_own_authorizer_and_a_literal_ttl_is_read() -> None:
    template = load_template()
    auth = template["Resources"]["Api"]["Properties"]["Auth"]
    auth["Authorizers"]["Other"] = copy.deepcopy(auth["Authorizers"]["ApiKeyAuthorizer"])
    auth["Authorizers"]["Other"]["Identity"]["ReauthorizeEvery"] = 7
    events = template["Resources"]["SessionsFunction"]["Properties"]["Events"]
    events["Usage"]["Properties"]["Auth"] = {"Authorizer": "Other"}

    usage = next(r for r in http_api_routes(template) if r.route_key == "GET /api/usage")

    assert usage.authorizer == "Other"
    assert http_api_authorizers(template)["Other"].cache_seconds == 7


def test_an_api_without_auth_has_only_public_routes() -> None:
    template = load_template()
    del template["Resources"]["Api"]["Properties"]["Auth"]

    assert http_api_authorizers(template) == {}
    assert all(route.authorizer is None for route in http_api_routes(template))


def test_an_authorizer_not_given_as_getatt_is_refused() -> None:
    template = load_template()
    authorizer = template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["ApiKeyAuthorizer"]
    authorizer["FunctionArn"] = "arn:aws:lambda:us-east-1:1:function:elsewhere"

    with pytest.raises(ValueError, match="GetAtt"):
        http_api_authorizers(template)


# --- the authorizer step ------------------------------------------------------------------------
def authorization(pools: FakePools, clock: Clock, cache_seconds: float | None = None) -> Authorization:
    return Authorization(http_api_authorizers(), pools, cache_seconds, clock)  # type: ignore[arg-type]


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "   "}])
def test_a_missing_identity_header_is_401_without_calling_the_authorizer(headers: dict[str, str]) -> None:
    pools = FakePools()
    route, event = route_event("GET", "/api/sessions", headers)

    decision = authorization(pools, Clock()).check(route, event)

    assert decision.status == HTTPStatus.UNAUTHORIZED
    assert pools.calls == []


def test_the_authorizer_gets_a_payload_2_request_event_and_its_context_is_passed_on() -> None:
    pools = FakePools()
    route, event = route_event(
        "DELETE", "/api/e2b/files/ses_1/a/b.txt", {"Authorization": "Bearer sgw_x"}, "recursive=true"
    )

    decision = authorization(pools, Clock()).check(route, event)

    assert decision.status is None
    assert decision.context == ALLOW["context"]
    [sent] = pools.authorizer_calls()
    assert (sent["version"], sent["type"]) == ("2.0", "REQUEST")
    assert sent["identitySource"] == ["Bearer sgw_x"]
    assert sent["routeKey"] == "DELETE /api/e2b/files/{session_id}/{file_path+}"
    assert sent["routeArn"].endswith("/$default/DELETE/api/e2b/files/ses_1/a/b.txt")
    assert sent["routeArn"].startswith("arn:aws:execute-api:")
    assert (sent["rawPath"], sent["rawQueryString"]) == ("/api/e2b/files/ses_1/a/b.txt", "recursive=true")
    assert sent["headers"]["authorization"] == "Bearer sgw_x"
    assert sent["queryStringParameters"] == {"recursive": "true"}
    assert sent["pathParameters"] == {"session_id": "ses_1", "file_path": "a/b.txt"}
    assert sent["requestContext"]["http"]["method"] == "DELETE"
    assert sent["requestContext"]["requestId"] == event["requestContext"]["requestId"]
    assert "authorizer" not in event["requestContext"]  # the route's own event is left alone


def test_a_public_route_never_asks_the_authorizer() -> None:
    pools = FakePools()
    route, event = route_event("GET", "/api/openapi.json", {})

    decision = authorization(pools, Clock()).check(route, event)

    assert (decision.status, pools.calls) == (None, [])


def test_a_denial_is_403() -> None:
    pools = FakePools({"isAuthorized": False})
    route, event = route_event("GET", "/api/sessions", {"Authorization": "Bearer nope"})

    assert authorization(pools, Clock()).check(route, event).status == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize(
    "answer", [RuntimeError("boom"), None, {"isAuthorized": "yes"}, {"context": {}}, ["isAuthorized"]]
)
def test_a_failing_or_invalid_authorizer_is_500_and_is_not_cached(answer: Any) -> None:
    pools = FakePools(answer)
    check = authorization(pools, Clock()).check
    route, event = route_event("GET", "/api/sessions", {"Authorization": "Bearer k"})

    assert check(route, event).status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert check(route, event).status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert len(pools.authorizer_calls()) == 2


def test_answers_are_cached_by_identity_for_the_templates_ttl_on_every_route() -> None:
    pools, clock = FakePools(), Clock()
    check = authorization(pools, clock).check
    sessions, sessions_event = route_event("GET", "/api/sessions", {"Authorization": "Bearer a"})
    usage, usage_event = route_event("GET", "/api/usage", {"Authorization": "Bearer a"})
    _, other_key_event = route_event("GET", "/api/usage", {"Authorization": "Bearer b"})

    check(sessions, sessions_event)
    pools.answer = {"isAuthorized": False}  # e.g. the key was revoked meanwhile
    clock.now += 299
    assert check(usage, usage_event).status is None  # still the cached answer
    assert len(pools.authorizer_calls()) == 1
    assert check(usage, other_key_event).status == HTTPStatus.FORBIDDEN  # another identity: asked
    clock.now += 2  # 301 s: the first answer is stale
    assert check(sessions, sessions_event).status == HTTPStatus.FORBIDDEN
    assert len(pools.authorizer_calls()) == 3


def test_denials_are_cached_too() -> None:
    pools, clock = FakePools({"isAuthorized": False}), Clock()
    check = authorization(pools, clock).check
    route, event = route_event("GET", "/api/sessions", {"Authorization": "Bearer a"})

    check(route, event)
    pools.answer = ALLOW
    assert check(route, event).status == HTTPStatus.FORBIDDEN
    assert len(pools.authorizer_calls()) == 1


@pytest.mark.parametrize(("override", "calls"), [(0, 3), (1.5, 2)])
def test_the_local_ttl_override_replaces_the_templates(override: float, calls: int) -> None:
    pools, clock = FakePools(), Clock()
    check = authorization(pools, clock, cache_seconds=override).check
    route, event = route_event("GET", "/api/sessions", {"Authorization": "Bearer a"})

    check(route, event)
    clock.now += 1
    check(route, event)
    clock.now += 1
    check(route, event)

    assert len(pools.authorizer_calls()) == calls


# --- over HTTP ----------------------------------------------------------------------------------
@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, FakePools]]:
    pools = FakePools()
    server = Gateway(
        ("127.0.0.1", 0),
        http_api_routes(),
        pools,  # type: ignore[arg-type]
        cors_configuration(),
        http_api_authorizers(),
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, pools
    server.shutdown()
    server.server_close()


def call(server: Gateway, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_over_http_the_route_gets_the_authorizers_context_as_requestcontext_authorizer_lambda(
    gateway: tuple[Gateway, FakePools],
) -> None:
    server, pools = gateway

    status, _, body = call(server, "GET", "/api/sessions", {"Authorization": "Bearer k"})

    assert status == 200
    assert json.loads(body) == {"lambda": ALLOW["context"]}
    assert [function for function, _ in pools.calls] == ["AuthorizerFunction", "SessionsFunction"]


@pytest.mark.parametrize(
    ("headers", "answer", "status", "body"),
    [
        ({}, ALLOW, 401, b'{"message":"Unauthorized"}'),
        ({"Authorization": "Bearer k"}, {"isAuthorized": False}, 403, b'{"message":"Forbidden"}'),
        ({"Authorization": "Bearer k"}, RuntimeError("x"), 500, b'{"message":"Internal Server Error"}'),
    ],
)
def test_over_http_the_gateways_own_answers_never_reach_the_function(
    gateway: tuple[Gateway, FakePools], headers: dict[str, str], answer: Any, status: int, body: bytes
) -> None:
    server, pools = gateway
    pools.answer = answer

    got_status, got_headers, got_body = call(
        server, "GET", "/nope", {"Origin": "https://a.example"} | headers
    )

    assert (got_status, got_body) == (status, body)
    assert got_headers["Content-Type"] == "application/json"
    assert got_headers["Access-Control-Allow-Origin"] == "*"
    assert "MetaFunction" not in [function for function, _ in pools.calls]


def test_over_http_cors_preflights_and_the_document_need_no_key(gateway: tuple[Gateway, FakePools]) -> None:
    server, pools = gateway
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}

    assert call(server, "OPTIONS", "/api/sessions", preflight)[0] == 204
    status, _, body = call(server, "GET", "/api/openapi.json", {})

    assert status == 200
    assert json.loads(body) is None  # the function ran, with no authorizer context at all
    assert [function for function, _ in pools.calls] == ["MetaFunction"]


def test_the_cache_drops_expired_answers_instead_of_growing_with_every_key_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("local.gateway.MAX_CACHED_IDENTITIES", 3)
    pools, clock = FakePools({"isAuthorized": False}), Clock()
    authorizer = authorization(pools, clock)
    for n in range(3):
        authorizer.check(*route_event("GET", "/api/sessions", {"Authorization": f"Bearer k{n}"}))
    clock.now += 301  # all three expired
    authorizer.check(*route_event("GET", "/api/sessions", {"Authorization": "Bearer fresh"}))

    assert len(authorizer._cache) == 1


def test_the_ttl_runs_from_the_authorizers_answer_not_from_the_question() -> None:
    """A cold authorizer may take seconds to answer: that time must not use up the cached answer's."""
    clock = Clock()

    class SlowPools(FakePools):
        def invoke(self, route: Route, event: dict[str, Any]) -> Any:
            clock.now += 5  # a cold start
            return super().invoke(route, event)

    pools = SlowPools()
    check = authorization(pools, clock, cache_seconds=2).check
    route, event = route_event("GET", "/api/sessions", {"Authorization": "Bearer a"})

    check(route, event)
    clock.now += 1.5  # 6.5 s after the question, 1.5 s after the answer
    check(route, event)

    assert len(pools.authorizer_calls()) == 1
