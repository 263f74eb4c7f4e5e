"""Broken object-level authorization, route by route: two tenants, each with a session and a file.

Another tenant's session id must answer exactly as a missing one does (404 session_not_found,
same body but for the id) on every route that takes one, and must leave the owner's session and
file as they were. A request no authorizer vouched for gets 401 on every operation of the spec.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from sandbox_gateway.models.tenant import SCOPES

from local.gateway import RequestData, build_event, find_route
from local.template import ROOT, http_api_routes
from tests.integration.conftest import Api, body_of, usage_of
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke

A, B = "tenant-a", "tenant-b"
MISSING = "ses_01jzzzzzzzzzzzzzzzzzzzzzzz"  # well-formed, never created
FILE = "/workspace/output.txt"


@dataclass(frozen=True)
class RouteCase:
    name: str  # as the matrix prints it
    function: str
    event: str
    own_status: int  # the owner's answer (the matrix's A->A column)


# Every route that takes a session id, in the order the owner may call them on its own session
# (deleting the file, then the session, last).
SESSION_ROUTES = [
    RouteCase("GET /api/sessions/{id}", "sessions", "sessions_get", 200),
    RouteCase("POST /api/sessions/{id}/keepalive", "sessions", "sessions_keepalive", 200),
    RouteCase("POST /api/e2b/execute", "execute", "execute_python", 200),
    RouteCase("GET /api/e2b/files/{id}", "files", "files_list", 200),
    RouteCase("GET /api/e2b/files/{id}/{path}", "files", "files_read", 200),
    RouteCase("GET /api/e2b/files/{id}/{path} (raw)", "files", "files_read_raw", 200),
    RouteCase("POST /api/e2b/files", "files", "files_write", 201),
    RouteCase("DELETE /api/e2b/files/{id}/{path}", "files", "files_delete", 204),
    RouteCase("DELETE /api/sessions/{id}", "sessions", "sessions_delete", 200),
]


def call(route: RouteCase, tenant: str, session_id: str) -> dict[str, Any]:
    event = with_tenant(load_event(route.event, session_id), tenant)
    return invoke(route.function, event)


def create_session(tenant: str) -> str:
    response = invoke("sessions", with_tenant(load_event("sessions_create"), tenant))
    assert response["statusCode"] == 201, response["body"]
    return str(body_of(response)["session_id"])


def write_file(tenant: str, session_id: str, data: bytes) -> None:
    event = with_tenant(
        load_event("files_write", session_id, file_path=FILE, content=base64.b64encode(data).decode()),
        tenant,
    )
    assert invoke("files", event)["statusCode"] == 201


def snapshot(tenant: str, session_id: str, provider: FakeSandboxProvider) -> dict[str, Any]:
    """What the owner sees of its session and sandbox: must not move under another tenant's calls."""
    session = body_of(invoke("sessions", with_tenant(load_event("sessions_get", session_id), tenant)))
    (sandbox,) = [s for s in provider.sandboxes.values() if s.spec.session_id == session_id]
    return {
        "session": session,
        "sandbox_live": session_id in {provider.sandboxes[i].spec.session_id for i in provider.live_ids},
        "files": dict(sandbox.files),
        "timeout_seconds": sandbox.timeout_seconds,
        "executions": len(sandbox.runs),
    }


def without_id(response: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The answer with the session id it names replaced, to compare with a missing id's answer."""
    body = json.loads(response["body"].replace(session_id, "<id>"))
    return {
        "status": response["statusCode"],
        "content_type": response["headers"].get("Content-Type"),
        "retry_after": response["headers"].get("Retry-After"),
        "body": body,
    }


def test_another_tenants_session_answers_like_a_missing_one_on_every_route(
    api: Api, provider: FakeSandboxProvider
) -> None:
    sessions = {A: create_session(A), B: create_session(B)}
    contents = {A: b"tenant a's secret report\n", B: b"tenant b's own data\n"}
    for tenant, session_id in sessions.items():
        write_file(tenant, session_id, contents[tenant])
    before = {t: snapshot(t, s, provider) for t, s in sessions.items()}
    # The sandbox carries its tenant (E2B metadata, Docker labels are built from this spec).
    assert {s.spec.session_id: s.spec.tenant_id for s in provider.sandboxes.values()} == {
        sessions[A]: A,
        sessions[B]: B,
    }
    matrix: dict[str, dict[str, str]] = {}

    for route in SESSION_ROUTES:
        row = matrix.setdefault(route.name, {})
        missing = without_id(call(route, A, MISSING), MISSING)
        assert missing["status"] == 404 and missing["body"]["error"]["code"] == "session_not_found"
        row["missing id"] = f"{missing['status']} {missing['body']['error']['code']}"
        for caller, owner in ((A, B), (B, A)):
            answer = call(route, caller, sessions[owner])
            shaped = without_id(answer, sessions[owner])
            row[f"{caller[-1].upper()}->{owner[-1].upper()}"] = (
                f"{answer['statusCode']} {body_of(answer).get('error', {}).get('code')}"
            )
            # Exactly the missing id's answer: same status, code, message, request id, headers.
            assert shaped == missing, (route.name, caller, owner, answer)
            assert contents[owner].decode() not in answer["body"]

    after = {t: snapshot(t, s, provider) for t, s in sessions.items()}
    assert after == before  # nothing moved: not extended, not closed, no code run, files intact
    for tenant in sessions:
        assert after[tenant]["session"]["status"] == "active"
        assert after[tenant]["files"][FILE] == contents[tenant]

    # The owner itself: every route works on its own session.
    for route in SESSION_ROUTES:
        answer = call(route, A, sessions[A])
        assert answer["statusCode"] == route.own_status, (route.name, answer["body"])
        matrix[route.name]["A->A"] = f"{answer['statusCode']} ok"

    # B's session survived A's own calls too.
    assert snapshot(B, sessions[B], provider) == before[B]
    print_matrix(matrix)
    assert all(len(row) == 4 for row in matrix.values())


def print_matrix(matrix: dict[str, dict[str, str]]) -> None:
    columns = ["A->B", "B->A", "A->A", "missing id"]
    titles = [
        "A asks for B's session",
        "B asks for A's session",
        "A asks for its own",
        "A asks for a missing id",
    ]
    print("\n| route | " + " | ".join(titles) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in matrix.items():
        print(f"| {name} | " + " | ".join(row[c] for c in columns) + " |")


def test_list_sessions_shows_only_the_callers_own(api: Api) -> None:
    mine = {A: {create_session(A) for _ in range(3)}, B: {create_session(B) for _ in range(2)}}

    for tenant in (A, B):
        event = with_tenant(load_event("sessions_list"), tenant)
        event["queryStringParameters"] = {"limit": "100"}
        listed = body_of(invoke("sessions", event))["sessions"]
        assert {s["session_id"] for s in listed} == mine[tenant]
    other = with_tenant(load_event("sessions_list"), "tenant-c")
    assert body_of(invoke("sessions", other))["sessions"] == []


def test_usage_shows_only_the_callers_own(api: Api) -> None:
    for _ in range(3):
        create_session(A)
    create_session(B)

    usage_a, usage_b, usage_c = usage_of(A), usage_of(B), usage_of("tenant-c")

    assert (usage_a["tenant_id"], usage_a["active_sessions"]) == (A, 3)
    assert [d["sessions_created"] for d in usage_a["days"]] == [3]
    assert (usage_b["tenant_id"], usage_b["active_sessions"]) == (B, 1)
    assert [d["sessions_created"] for d in usage_b["days"]] == [1]
    assert (usage_c["tenant_id"], usage_c["active_sessions"], usage_c["days"]) == ("tenant-c", 0, [])


def test_an_idempotency_key_of_one_tenant_replays_nothing_for_another(api: Api) -> None:
    """Two tenants may pick the same Idempotency-Key: each gets its own session, never the other's."""
    answers = {}
    for tenant in (A, B, A):
        event = with_tenant(load_event("sessions_create_idempotent"), tenant)
        event["headers"]["idempotency-key"] = "shared-key-1"
        response = invoke("sessions", event)
        assert response["statusCode"] == 201, response["body"]
        answers.setdefault(tenant, []).append(body_of(response)["session_id"])

    assert answers[A][0] == answers[A][1]  # a replay for its own tenant
    assert answers[B][0] != answers[A][0]
    b_sees = with_tenant(load_event("sessions_get", answers[B][0]), B)
    assert invoke("sessions", b_sees)["statusCode"] == 200
    assert invoke("sessions", with_tenant(load_event("sessions_get", answers[A][0]), B))["statusCode"] == 404


# --- no authorizer context: 401 on every operation of the spec ----------------------------------
def spec_operations() -> list[tuple[str, str]]:
    spec = json.loads((ROOT / "openapi.json").read_text())
    operations = []
    for path, methods in spec["paths"].items():
        filled = (
            path.replace("{session_id}", MISSING)
            .replace("{file_path}", "dir/output.txt")
            .replace("{execution_id}", "exe_" + "0" * 28)
            if "{" in path
            else path
        )
        assert "{" not in filled, path
        operations += [(method.upper(), filled) for method in methods if method != "parameters"]
    return sorted(operations)


ROUTES = http_api_routes()


def route_event(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The event API Gateway would send the function serving `method path` (no authorizer ran)."""
    found = find_route(ROUTES, method, path)
    assert found is not None, (method, path)
    route, parameters = found
    payload = json.dumps(body if body is not None else {}).encode() if method in ("POST", "PUT") else b""
    request = RequestData(
        method=method,
        raw_path=quote(path),
        query="",
        headers=[("content-type", "application/json"), ("host", "localhost")],
        body=payload,
        client_ip="127.0.0.1",
    )
    return route.code_dir.name, build_event(route, parameters, request)


OPERATIONS = spec_operations()


def test_the_spec_lists_every_route_of_the_template() -> None:
    served = {(r.method, r.path) for r in ROUTES if not r.is_default and r.authorizer is not None}
    assert len(OPERATIONS) == len(served) >= 12


@pytest.mark.parametrize(("method", "path"), [*OPERATIONS, ("GET", "/api/no-such-route")])
def test_a_route_reached_without_authorizer_context_is_401(
    api: Api, provider: FakeSandboxProvider, table: Any, method: str, path: str
) -> None:
    # A real session of some tenant exists: the 401 must not depend on the id being unknown.
    session_id = create_session(A)
    function, event = route_event(method, path.replace(MISSING, session_id), {"session_id": session_id})
    assert "authorizer" not in event["requestContext"]

    response = invoke(function, event)

    assert response["statusCode"] == 401, (method, path, response["body"])
    assert body_of(response)["error"]["code"] == "unauthorized"
    assert response["headers"].get("WWW-Authenticate") == "Bearer"
    assert snapshot(A, session_id, provider)["session"]["status"] == "active"
    assert len(provider.sandboxes) == 1  # nothing was created either


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"lambda": {}},
        {"lambda": {"tenant_id": ""}},
        {"lambda": None},
        {"iam": {"accountId": "123456789012"}},
    ],
    ids=["empty", "empty-lambda", "blank-tenant", "null-lambda", "iam-only"],
)
def test_an_authorizer_context_without_a_tenant_is_401(api: Api, context: dict[str, Any]) -> None:
    create_session(A)
    event = load_event("sessions_list")
    event["requestContext"]["authorizer"] = context
    response = invoke("sessions", event)
    assert response["statusCode"] == 401, response["body"]
    assert body_of(response)["error"]["code"] == "unauthorized"


def test_a_tenant_named_in_the_request_itself_is_ignored(api: Api) -> None:
    """Only the authorizer names the tenant: headers, query and body saying otherwise change nothing."""
    theirs = create_session(B)
    event = with_tenant(load_event("sessions_get", theirs), A)
    event["headers"].update({"x-tenant-id": B, "tenant-id": B})
    event["queryStringParameters"] = {"tenant_id": B}
    event["rawQueryString"] = f"tenant_id={B}"
    assert invoke("sessions", event)["statusCode"] == 404

    listing = with_tenant(load_event("sessions_list"), A)
    listing["queryStringParameters"] = {"tenant_id": B}
    assert body_of(invoke("sessions", listing))["sessions"] == []


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs"])
def test_the_spec_and_docs_answer_without_a_key(api: Api, path: str) -> None:
    function, event = route_event("GET", path)
    assert "authorizer" not in event["requestContext"]

    response = invoke(function, event)

    assert response["statusCode"] == 200, response["body"]


def test_a_key_without_a_scope_is_refused_before_the_session_is_looked_up(api: Api) -> None:
    """403 for a missing scope, whether the session is the caller's, another tenant's or missing:
    the scope check must not become an oracle for which ids exist."""
    own, theirs = create_session(A), create_session(B)
    answers = set()
    for session_id in (own, theirs, MISSING):
        event = with_tenant(load_event("execute_python", session_id), A)
        event["requestContext"]["authorizer"]["lambda"]["scopes"] = ",".join(
            s for s in SCOPES if s != "execute"
        )
        response = invoke("execute", event)
        answers.add(response["body"].replace(session_id, "<id>"))
        assert response["statusCode"] == 403
    assert len(answers) == 1
