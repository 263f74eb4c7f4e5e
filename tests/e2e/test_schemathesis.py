"""The API fuzzed against its own contract: schemathesis reads the spec the running stack serves
(GET /api/openapi.json) and calls every operation with generated requests, valid and invalid.

Each answer must be no 5xx, a status the operation documents, a body that matches the documented
schema, and the documented content type. Bounded and reproducible: a fixed number of examples per
operation and a fixed seed, so CI sees the same requests every run.

Generated session ids are random, so most calls on a session answer 404; about half of them are
pointed at real, live sessions instead, so the success paths are fuzzed too. Every session the run
creates is closed, and the test checks that none is left live.

Every call sends the stack's dev key (all scopes), as the spec's bearer security scheme asks; the
gateway's own 401/403 for a missing or refused key are tested in test_api_keys.py.
"""

from __future__ import annotations

import base64
import contextlib
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from local.stack import Stack
from tests.e2e.conftest import Client, bearer

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# Examples per operation and mode (valid requests, then invalid ones): 11 operations x 2 x this.
EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 30}
# Fixed rather than derandomize=True, whose seed changes whenever this file does; another seed
# explores other requests: SGW_SCHEMATHESIS_SEED=7 pytest tests/e2e/test_schemathesis.py
SEED = int(os.environ.get("SGW_SCHEMATHESIS_SEED", "20261126"))
LIVE_SESSIONS = 3  # generated calls close some: keep more than one real session to aim at
LIVE = {"creating", "active"}
KNOWN_FILE = "known.txt"  # in each real session, so file reads and deletes can succeed too
KNOWN_CONTENT = base64.b64encode(b"known\n").decode()


@dataclass(frozen=True)
class Found:
    operation: str
    mode: str
    title: str
    message: str
    curl: str


def _session_statuses(client: Client) -> dict[str, str]:
    found: dict[str, str] = {}
    token: str | None = None
    while True:
        params = {"limit": "100"} | ({"next_token": token} if token else {})
        page = client.request("GET", "/api/sessions", params=params)
        assert page.status_code == 200, page.text
        found |= {item["session_id"]: item["status"] for item in page.json()["sessions"]}
        token = page.json().get("next_token")
        if not token:
            return found


@pytest.fixture
def sessions_closed_afterwards(client: Client) -> Iterator[list[str]]:
    """Real sessions to aim generated calls at. Every session created while the test runs, these
    and the generated creates alike, is closed at its end, and none may be left live."""
    before = set(_session_statuses(client))
    sessions = [client.create_session() for _ in range(LIVE_SESSIONS)]
    for session_id in sessions:
        body = {"session_id": session_id, "file_path": KNOWN_FILE, "content": KNOWN_CONTENT}
        written = client.request("POST", "/api/e2b/files", json=body)
        assert written.status_code == 201, written.text
    yield sessions
    made = set(_session_statuses(client)) - before
    for session_id in sorted(made):
        closed = client.request("DELETE", f"/api/sessions/{session_id}")
        assert closed.status_code == 200, closed.text
    statuses = _session_statuses(client)
    left = {sid: statuses[sid] for sid in made if statuses.get(sid) in LIVE}
    assert not left, f"sessions left live after the run: {left}"


def _aim_at_a_real_session(case: Any, sessions: list[str]) -> None:
    """Half of the generated session ids become real ones, in the path or in the body, and half of
    the file paths sent with them the file each real session holds (and valid content to write).
    Chosen by the generated values themselves, so a run stays reproducible."""

    def chosen(generated: object) -> int | None:
        if not isinstance(generated, str):
            return None
        digest = zlib.crc32(generated.encode("utf-8", "surrogatepass"))
        return digest // 2 if digest % 2 == 0 else None

    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if (index := chosen(path.get("session_id"))) is not None:
        path["session_id"] = sessions[index % len(sessions)]
        if chosen(path.get("file_path")) is not None:
            path["file_path"] = KNOWN_FILE
    body = case.body if isinstance(case.body, dict) else {}
    if (index := chosen(body.get("session_id"))) is not None:
        body["session_id"] = sessions[index % len(sessions)]
        if "content" in body and chosen(body.get("file_path")) is not None:
            body["file_path"] = KNOWN_FILE
            body["content"] = KNOWN_CONTENT


def _fuzz(
    operation: Any, mode: GenerationMode, stack: Stack, client: Client, sessions: list[str]
) -> tuple[Counter[int | str], list[Found]]:
    """Run one operation's examples; every failing check is collected, none stops the run.
    Returns the statuses answered and the failures."""
    statuses: Counter[int | str] = Counter()
    found: list[Found] = []

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,  # with the fixed seed below: the same requests every run
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(SEED)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _aim_at_a_real_session(case, sessions)
        key = bearer(stack.api_key)
        try:
            response = case.call_and_validate(base_url=stack.url, headers=key, checks=CHECKS, timeout=60)
        except (Failure, FailureGroup) as failed:
            statuses["failed"] += 1  # its status is in the failure
            failures = failed.exceptions if isinstance(failed, FailureGroup) else (failed,)
            curl = case.as_curl_command(headers=key, base_url=stack.url)
            found.extend(Found(operation.label, mode.value, f.title, f.message, curl) for f in failures)
            return
        statuses[response.status_code] += 1
        if case.method.upper() == "POST" and case.path == "/api/sessions" and response.status_code == 201:
            # Close at once: a sandbox per generated create would pile up on the local host.
            client.request("DELETE", f"/api/sessions/{response.json()['session_id']}")

    # e.g. no invalid request exists for an operation without inputs: nothing to send
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return statuses, found


def test_every_operation_conforms_to_the_spec(
    stack: Stack, client: Client, sessions_closed_afterwards: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", timeout=30)
    # The reproductions must be exact: by default `next_token` and the like print as [Filtered].
    schema.config.output.sanitization.update(enabled=False)
    # Closing sessions last: run earlier, it would close the real ones every other call aims at.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: operation.label == "DELETE /api/sessions/{session_id}",
    )
    assert len(operations) >= 11, [operation.label for operation in operations]

    answered: dict[str, Counter[int | str]] = {}
    found: list[Found] = []
    for operation in operations:
        answered[operation.label] = Counter()
        for mode in EXAMPLES:
            statuses, failures = _fuzz(operation, mode, stack, client, sessions_closed_afterwards)
            answered[operation.label] += statuses
            found.extend(failures)

    total = sum(sum(statuses.values()) for statuses in answered.values())
    summary = f"schemathesis (seed {SEED}): {len(operations)} operations, {total} requests"
    with capsys.disabled():  # the numbers belong in the run's output, passed or failed
        print(f"\n{summary}")
        for label, statuses in answered.items():
            counts = ", ".join(f"{status}x{n}" for status, n in sorted(statuses.items(), key=str))
            print(f"  {label}: {sum(statuses.values())} ({counts})")
    assert all(answered.values()), f"never called: {[op for op, n in answered.items() if not n]}"
    # Real sessions were reached: at least one call on a session's path answered 200.
    assert answered["GET /api/sessions/{session_id}"][200], answered["GET /api/sessions/{session_id}"]
    distinct = {(f.operation, f.title): f for f in found}
    assert not distinct, f"{summary}; {len(distinct)} distinct failures:\n" + "\n\n".join(
        f"{f.operation} ({f.mode}): {f.title}\n{f.message}\n{f.curl}" for f in distinct.values()
    )
