"""API keys over real HTTP: the local gateway runs template.yaml's Lambda authorizer in front of
every route but the document and Swagger UI, and caches its answers as API Gateway does (for
AUTHORIZER_CACHE_SECONDS here instead of the template's 300 s)."""

from __future__ import annotations

import time

import pytest
import requests

from local.stack import Stack, tenant_store
from tests.e2e.conftest import AUTHORIZER_CACHE_SECONDS, Client, bearer, create_key

# One request per route of the template that needs a key, and an unknown path ($default).
GUARDED = [
    ("GET", "/api/environments"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/ses_00000000000000000000000000"),
    ("POST", "/api/sessions/ses_00000000000000000000000000/keepalive"),
    ("DELETE", "/api/sessions/ses_00000000000000000000000000"),
    ("GET", "/api/usage"),
    ("POST", "/api/e2b/execute"),
    ("POST", "/api/e2b/files"),
    ("GET", "/api/e2b/files/ses_00000000000000000000000000"),
    ("GET", "/api/e2b/files/ses_00000000000000000000000000/a.txt"),
    ("DELETE", "/api/e2b/files/ses_00000000000000000000000000/a.txt"),
    ("GET", "/nope"),
]
UNKNOWN_KEY = "sgw_000000000000_" + "A" * 43


def call(stack: Stack, method: str, path: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.request(method, stack.url + path, headers=headers, json={}, timeout=60)


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_no_key_is_401_from_the_gateway_itself(stack: Stack, method: str, path: str) -> None:
    response = call(stack, method, path)

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}  # API Gateway's shape: no function ran
    assert "Server-Timing" not in response.headers  # every function's answer carries one


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {UNKNOWN_KEY}",  # well-formed, never issued
        "Bearer sgw_not_a_key",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
    ids=["unknown", "malformed", "wrong-scheme", "no-token"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/sessions"), ("GET", "/nope")])
def test_a_key_the_authorizer_refuses_is_403_from_the_gateway(
    stack: Stack, authorization: str, method: str, path: str
) -> None:
    response = call(stack, method, path, {"Authorization": authorization})

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_the_wrong_scheme_of_the_dev_key_is_refused(stack: Stack) -> None:
    response = call(stack, "GET", "/api/sessions", {"Authorization": f"Token {stack.api_key}"})

    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs"])
def test_the_document_and_swagger_ui_answer_without_a_key(stack: Stack, path: str) -> None:
    response = requests.get(stack.url + path, timeout=60)

    assert response.status_code == 200
    assert "Server-Timing" in response.headers  # answered by MetaFunction, not by the gateway
    if path.endswith(".json"):
        assert response.json()["components"]["securitySchemes"]


def test_the_dev_key_reaches_the_functions_as_its_tenant(stack: Stack, client: Client) -> None:
    session_id = client.create_session()

    try:
        shown = client.request("GET", f"/api/sessions/{session_id}")
        assert shown.status_code == 200
        usage = client.request("GET", "/api/usage")
        assert usage.status_code == 200, usage.text
        assert usage.json()["tenant_id"] == stack.tenant_id == "dev"
    finally:
        assert client.request("DELETE", f"/api/sessions/{session_id}").status_code == 200


def test_a_revoked_key_works_until_the_cache_ttl_has_passed_then_is_403(stack: Stack) -> None:
    _, key_id, key = create_key(stack, scopes=["sessions"])
    # The answer is cached from when the authorizer gave it, before the route ran: time from here.
    asked_at = time.monotonic()
    assert call(stack, "GET", "/api/sessions", bearer(key)).status_code == 200

    assert tenant_store(stack.dynamodb_url).revoke_key(key_id) is not None
    still = call(stack, "GET", "/api/sessions", bearer(key))
    assert time.monotonic() - asked_at < AUTHORIZER_CACHE_SECONDS, "too slow to see the cache"
    assert still.status_code == 200, still.text  # the cached answer: as API Gateway within its TTL

    time.sleep(AUTHORIZER_CACHE_SECONDS + 0.5)
    refused = call(stack, "GET", "/api/sessions", bearer(key))
    assert refused.status_code == 403
    assert refused.json() == {"message": "Forbidden"}


def test_a_quota_change_takes_effect_when_the_cached_answer_expires(stack: Stack) -> None:
    """The tenant's quotas travel with the authorizer's answer (decision 0011): within its TTL a
    request sees the quotas read with the key, after it the new ones. The code-size quota is checked
    before the session is looked up, so a missing session shows which quotas were applied:
    404 under the old ones, 429 under the new."""
    tenant, _, key = create_key(stack, scopes=["execute"])
    body = {"session_id": "ses_00000000000000000000000000", "code": "x" * 11, "language": "python"}

    def execute() -> requests.Response:
        return requests.post(stack.url + "/api/e2b/execute", headers=bearer(key), json=body, timeout=60)

    # The first execute may start the execute function's worker, which can take longer than the
    # cache's TTL under load: let its answer expire, then cache a fresh one from a warm worker.
    assert execute().status_code == 404  # no override: the code runs into the missing session
    time.sleep(AUTHORIZER_CACHE_SECONDS + 0.5)
    asked_at = time.monotonic()  # the answer is cached from when the authorizer gave it
    assert execute().status_code == 404
    tenant_store(stack.dynamodb_url).set_quota_overrides(tenant, {"max_code_bytes": 10})
    still = execute()
    assert time.monotonic() - asked_at < AUTHORIZER_CACHE_SECONDS, "too slow to see the cache"
    assert still.status_code == 404, still.text  # the cached answer's quotas, as on API Gateway

    time.sleep(AUTHORIZER_CACHE_SECONDS + 0.5)
    refused = execute()
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert "max_code_bytes" in refused.json()["error"]["message"]


def test_a_new_key_works_at_once_and_sees_only_its_tenants_sessions(stack: Stack, client: Client) -> None:
    _, _, key = create_key(stack)
    own = Client(stack.url, key)
    session_id = own.create_session()

    try:
        listed = own.request("GET", "/api/sessions").json()["sessions"]
        assert [s["session_id"] for s in listed] == [session_id]
        other = client.request("GET", f"/api/sessions/{session_id}")  # the dev tenant's key
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "session_not_found"
    finally:
        assert own.request("DELETE", f"/api/sessions/{session_id}").status_code == 200
