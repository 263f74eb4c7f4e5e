"""The BOLA matrix over real HTTP: two tenants' keys against the local stack (gateway, Lambda
authorizer, functions, moto server, local E2B host). Another tenant's session id answers exactly as
a missing one on every route that takes one, and changes nothing of the owner's."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_gateway.models.tenant import SCOPES

from local.stack import Stack, tenant_store

MISSING = "ses_01jzzzzzzzzzzzzzzzzzzzzzzz"
FILE = "output.txt"


@dataclass
class Tenant:
    name: str
    key: str
    http: requests.Session
    base_url: str
    session_id: str = ""
    content: bytes = b""

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base_url + path, timeout=60, **kwargs)


@dataclass(frozen=True)
class RouteCase:
    name: str
    method: str
    path: str  # {id} is the session id
    body: dict[str, Any] | None = None  # "{id}" values are the session id
    headers: dict[str, str] | None = None
    own_status: int = 200

    def call(self, tenant: Tenant, session_id: str) -> requests.Response:
        body = None
        if self.body is not None:
            body = {k: session_id if v == "{id}" else v for k, v in self.body.items()}
        return tenant.request(
            self.method, self.path.replace("{id}", session_id), json=body, headers=self.headers
        )


CONTENT_B64 = base64.b64encode(b"written by the matrix\n").decode()
ROUTES = [
    RouteCase("GET /api/sessions/{id}", "GET", "/api/sessions/{id}"),
    RouteCase(
        "POST /api/sessions/{id}/keepalive", "POST", "/api/sessions/{id}/keepalive", {"timeout_seconds": 900}
    ),
    RouteCase(
        "POST /api/e2b/execute", "POST", "/api/e2b/execute", {"session_id": "{id}", "code": "print(6*7)"}
    ),
    RouteCase("GET /api/e2b/files/{id}", "GET", "/api/e2b/files/{id}"),
    RouteCase("GET /api/e2b/files/{id}/{path}", "GET", f"/api/e2b/files/{{id}}/{FILE}"),
    RouteCase(
        "GET /api/e2b/files/{id}/{path} (raw)",
        "GET",
        f"/api/e2b/files/{{id}}/{FILE}",
        headers={"Accept": "application/octet-stream"},
    ),
    RouteCase(
        "POST /api/e2b/files",
        "POST",
        "/api/e2b/files",
        {"session_id": "{id}", "file_path": FILE, "content": CONTENT_B64},
        own_status=201,
    ),
    RouteCase("DELETE /api/e2b/files/{id}/{path}", "DELETE", f"/api/e2b/files/{{id}}/{FILE}", own_status=204),
    RouteCase("DELETE /api/sessions/{id}", "DELETE", "/api/sessions/{id}"),
]


def new_tenant(stack: Stack, label: str) -> Tenant:
    name = f"bola-{label}-{time.time_ns()}"
    _, key = tenant_store(stack.dynamodb_url).create_key(name, "bola", SCOPES, int(time.time()))
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return Tenant(name, key, http, stack.url)


@pytest.fixture
def tenants(stack: Stack) -> Iterator[tuple[Tenant, Tenant]]:
    a, b = new_tenant(stack, "a"), new_tenant(stack, "b")
    try:
        yield a, b
    finally:
        for tenant in (a, b):
            listed = tenant.request("GET", "/api/sessions", params={"limit": 100}).json().get("sessions", [])
            for session in listed:
                if session["status"] in ("creating", "active"):
                    tenant.request("DELETE", f"/api/sessions/{session['session_id']}")


def start(tenant: Tenant) -> None:
    created = tenant.request("POST", "/api/sessions", json={"environment": "e2b-python"})
    assert created.status_code == 201, created.text
    tenant.session_id = created.json()["session_id"]
    tenant.content = f"{tenant.name}'s own file\n".encode()
    written = tenant.request(
        "POST",
        "/api/e2b/files",
        json={
            "session_id": tenant.session_id,
            "file_path": FILE,
            "content": base64.b64encode(tenant.content).decode(),
        },
    )
    assert written.status_code == 201, written.text


def shape(response: requests.Response, session_id: str) -> dict[str, Any]:
    """Everything a caller could tell apart, with the id it asked for replaced."""
    body = response.json()
    error = body["error"]
    return {
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type"),
        "retry_after": response.headers.get("Retry-After"),
        "code": error["code"],
        "message": error["message"].replace(session_id, "<id>"),
        "keys": sorted(error),
        "details": error.get("details"),
    }


def state(tenant: Tenant) -> dict[str, Any]:
    session = tenant.request("GET", f"/api/sessions/{tenant.session_id}")
    read = tenant.request("GET", f"/api/e2b/files/{tenant.session_id}/{FILE}")
    return {
        "session": session.json(),
        "file": base64.b64decode(read.json()["content"]) if read.status_code == 200 else read.status_code,
    }


def test_the_bola_matrix_over_http(stack: Stack, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    start(a)
    start(b)
    before = {t.name: state(t) for t in (a, b)}
    matrix: dict[str, dict[str, str]] = {}

    for route in ROUTES:
        row = matrix.setdefault(route.name, {})
        missing = route.call(a, MISSING)
        expected = shape(missing, MISSING)
        assert expected["status"] == 404 and expected["code"] == "session_not_found", missing.text
        row["missing id"] = f"{missing.status_code} {expected['code']}"
        for caller, owner, column in ((a, b, "A->B"), (b, a, "B->A")):
            answer = route.call(caller, owner.session_id)
            row[column] = f"{answer.status_code} {answer.json().get('error', {}).get('code')}"
            assert shape(answer, owner.session_id) == expected, (route.name, column, answer.text)
            assert owner.content.decode() not in answer.text

    after = {t.name: state(t) for t in (a, b)}
    assert after == before  # not extended, not closed, file intact
    for tenant in (a, b):
        assert after[tenant.name]["session"]["status"] == "active"
        assert after[tenant.name]["file"] == tenant.content

    for route in ROUTES:  # the owner: every route works on its own session, in this order
        answer = route.call(a, a.session_id)
        assert answer.status_code == route.own_status, (route.name, answer.text)
        matrix[route.name]["A->A"] = f"{answer.status_code} ok"
    assert state(b) == before[b.name]

    print("\n| route | A asks for B's session | B asks for A's session | A asks for its own | missing id |")
    print("|---|---|---|---|---|")
    for name, row in matrix.items():
        print(f"| {name} | {row['A->B']} | {row['B->A']} | {row['A->A']} | {row['missing id']} |")


def test_lists_and_usage_over_http_show_only_the_callers_own(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    start(a)
    start(b)
    extra = a.request("POST", "/api/sessions", json={})
    assert extra.status_code == 201, extra.text

    for tenant, expected in ((a, {a.session_id, extra.json()["session_id"]}), (b, {b.session_id})):
        listed = tenant.request("GET", "/api/sessions", params={"limit": 100}).json()["sessions"]
        assert {s["session_id"] for s in listed} == expected
        usage = tenant.request("GET", "/api/usage").json()
        assert usage["tenant_id"] == tenant.name
        assert usage["active_sessions"] == len(expected)
        assert sum(d["sessions_created"] for d in usage["days"]) == len(expected)

    # A's page token means nothing to B.
    token = a.request("GET", "/api/sessions", params={"limit": 1}).json()["next_token"]
    refused = b.request("GET", "/api/sessions", params={"next_token": token})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_page_token"


def test_the_functions_logs_hold_neither_key(stack: Stack, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    start(a)
    start(b)
    for tenant in (a, b):
        tenant.request("POST", "/api/e2b/execute", json={"session_id": tenant.session_id, "code": "print(1)"})
        tenant.request("GET", f"/api/sessions/{MISSING}")
    time.sleep(0.5)  # the workers' stdout reaches the log file

    logs = Path(stack.function_log).read_text(errors="replace")
    assert logs  # the functions do log here
    for tenant in (a, b):
        assert tenant.key not in logs
        assert tenant.key.split("_", 2)[2] not in logs
        assert tenant.content.decode() not in logs
