"""Secrets never logged: a full flow through the handlers, from the authorizer to close, with every
log line captured, searched for the API key, its hash, the E2B key, envs values and file contents.

Powertools' handler writes JSON to the stream it was given at import, which pytest's capsys does
not replace: the capture adds a handler with the same formatter to the service's logger (child
loggers propagate to it), records everything through caplog, and reads stdout/stderr (metrics are
printed there) with capsys.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sandbox_gateway import wiring
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import ProviderError
from sandbox_gateway.models.tenant import SCOPES
from sandbox_gateway.observability import logger

from tests.integration.conftest import body_of
from tests.support.events import load_event
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke

MARKERS = {
    "env": "m1-create-env-7f3a9c",
    "execute_env": "m2-execute-env-b41d02",
    "file": "m3-file-content-c9e6aa",
    "e2b_key": "e2b_m4-e2b-api-key-5d18f7",
}


@dataclass
class Captured:
    lines: io.StringIO
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]

    def text(self) -> str:
        out = self.capsys.readouterr()
        records = [
            f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {r.__dict__}"
            for r in self.caplog.records
        ]
        return "\n".join([self.lines.getvalue(), self.caplog.text, *records, out.out, out.err])


# INFO: the template's default LogLevel. DEBUG: LogLevel=DEBUG (POWERTOOLS_LOG_LEVEL), our logger only.
# library-DEBUG: Powertools' own loggers at DEBUG too (POWERTOOLS_DEBUG=true, or a Lambda
# ApplicationLogLevel of DEBUG): its "Calling API Route Handler" line prints the request models,
# so the fields that carry secrets and file contents are repr=False (models/api.py).
@pytest.fixture(params=["INFO", "DEBUG", "library-DEBUG"])
def captured(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Captured]:
    monkeypatch.setenv("E2B_API_KEY", MARKERS["e2b_key"])
    wiring.reset(keep_overrides=True)  # settings read afresh: they now hold the E2B key
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.log_level
    # The level is read at import; set it as POWERTOOLS_LOG_LEVEL would have.
    level_name = request.param.removeprefix("library-")
    logger.setLevel(level_name)
    caplog.set_level(logging.INFO)  # everything else at INFO (botocore's DEBUG dumps wire bodies)
    caplog.set_level(getattr(logging, level_name), logger=logger.name)
    if request.param.startswith("library-"):
        caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    try:
        yield Captured(lines, caplog, capsys)
    finally:
        logger.setLevel(level)
        logger._logger.removeHandler(handler)


def secrets_of(key: str) -> dict[str, str]:
    found = dict(MARKERS)
    found["api_key"] = key
    found["api_key_secret"] = key.split("_", 2)[2]
    found["api_key_hash"] = hashlib.sha256(key.encode()).hexdigest()
    found["file_base64"] = base64.b64encode(f"report: {MARKERS['file']}\n".encode()).decode()[:24]
    return found


def with_key(event: dict[str, Any], key: str, context: dict[str, Any]) -> dict[str, Any]:
    """As API Gateway passes it on: the caller's headers (the key among them) and the authorizer's context."""
    event["headers"]["authorization"] = f"Bearer {key}"
    event["requestContext"]["authorizer"] = {"lambda": context}
    return event


def authorizer_event(key: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/POST/api/sessions",
        "identitySource": [f"Bearer {key}"],
        "routeKey": "POST /api/sessions",
        "rawPath": "/api/sessions",
        "headers": {"authorization": f"Bearer {key}"},
        "requestContext": {"http": {"method": "POST", "path": "/api/sessions"}},
    }


def full_flow(key: str, provider: FakeSandboxProvider) -> list[dict[str, Any]]:
    answers = []
    decision = invoke("authorizer", authorizer_event(key))
    assert decision["isAuthorized"] is True
    context = decision["context"]
    denied = invoke("authorizer", authorizer_event(key[:-2] + "zz"))
    assert denied == {"isAuthorized": False}

    def call(function: str, name: str, session_id: str | None = None, **body: Any) -> dict[str, Any]:
        response = invoke(function, with_key(load_event(name, session_id, **body), key, context))
        answers.append(response)
        return response

    created = call("sessions", "sessions_create", envs={"SECRET_ENV": MARKERS["env"]})
    assert created["statusCode"] == 201, created["body"]
    session_id = body_of(created)["session_id"]
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.spec.envs == {"SECRET_ENV": MARKERS["env"]}  # it did reach the sandbox

    executed = call(
        "execute",
        "execute_python",
        session_id,
        code="print('hello from the flow')",
        envs={"TOKEN": MARKERS["execute_env"]},
    )
    assert executed["statusCode"] == 200, executed["body"]
    assert sandbox.runs[-1].envs == {"TOKEN": MARKERS["execute_env"]}

    content = f"report: {MARKERS['file']}\n".encode()
    written = call("files", "files_write", session_id, content=base64.b64encode(content).decode())
    assert written["statusCode"] == 201, written["body"]
    read = call("files", "files_read", session_id)
    assert base64.b64decode(body_of(read)["content"]) == content
    raw = call("files", "files_read_raw", session_id)
    assert base64.b64decode(raw["body"]) == content
    call("files", "files_list", session_id)

    # Error paths: the key and the secrets in bodies the service refuses.
    assert call("sessions", "sessions_create", api_key=key)["statusCode"] == 422
    assert call("sessions", "sessions_create", envs={"bad name": MARKERS["env"]})["statusCode"] == 422
    assert call("sessions", "sessions_create", metadata={"k": key * 5})["statusCode"] == 422
    assert call("execute", "execute_python", session_id, code=1, envs={"TOKEN": key})["statusCode"] == 422
    assert call("files", "files_write", session_id, file_path="../x", content=key)["statusCode"] == 400
    assert call("files", "files_write", session_id, content=key + "!")["statusCode"] == 400
    # A server-side failure (logged with its trace) while the envs are in the request.
    provider.fail_next_call = ProviderError("E2B failed to run code")
    failed = call("execute", "execute_python", session_id, envs={"TOKEN": MARKERS["execute_env"]})
    assert failed["statusCode"] == 502
    provider.fail_next_call = RuntimeError("unexpected")  # type: ignore[assignment]
    crashed = call("execute", "execute_python", session_id, envs={"TOKEN": MARKERS["execute_env"]})
    assert crashed["statusCode"] == 500

    assert call("sessions", "sessions_delete", session_id)["statusCode"] == 200
    return answers


def test_a_full_flow_logs_no_secret(
    table: Any, provider: FakeSandboxProvider, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = DynamoDBTenantStore(table).create_key("tenant-logs", "ci", SCOPES, int(time.time()))
    wiring.override(Provider.E2B, provider)  # the override survives the settings reset
    assert wiring.get_settings().e2b_api_key == MARKERS["e2b_key"]
    logger.warning("probe: captured", extra={"probe": True})
    logging.getLogger("sandbox-gateway.probe").warning("probe: child logger captured")

    answers = full_flow(key, provider)
    logs = captured.text()

    assert "probe: captured" in logs and "probe: child logger captured" in logs  # the capture works
    assert "request failed" in logs and "unhandled error" in logs  # the flow's own lines are here
    if logger.log_level == logging.DEBUG:
        assert logs.count("\n") > 20
    leaks = {name: value for name, value in secrets_of(key).items() if value in logs}
    assert leaks == {}, leaks
    # Nor in any answer's error message.
    for answer in answers:
        if answer["statusCode"] >= 400:
            error = json.dumps(body_of(answer)["error"])
            leaked = {n: v for n, v in secrets_of(key).items() if v in error and n != "file_base64"}
            assert leaked == {}, (leaked, error)
