"""`sgw admin` before it touches a table: a client-only install, and command lines it refuses
(against the local stack's table: tests/e2e/test_cli_admin.py); and what `sgw` says while a
quota makes it wait."""

from __future__ import annotations

import functools
import inspect
import sys

import httpx
import pytest
from sandbox_gateway_client import Gateway, cli
from sandbox_gateway_client.cli import EXIT_USAGE, app
from typer.testing import CliRunner

# Nothing here may reach a table: an endpoint no one listens on would make an attempt fail loudly.
WHERE = ["admin", "--table", "t", "--endpoint-url", "http://127.0.0.1:9"]
SESSION = {
    "session_id": "ses_0123456789abcdef",
    "status": "active",
    "agent": "code_executor",
    "environment": "e2b-python",
    "provider": "e2b",
    "created_at": "2026-11-26T10:18:12Z",
    "expires_at": "2026-11-26T10:33:12Z",
    "updated_at": "2026-11-26T10:18:13Z",
    "metadata": {},
}


@pytest.fixture
def runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


def test_admin_without_the_service_package_says_how_to_get_it(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client-only install: importing the service package fails.
    monkeypatch.setitem(sys.modules, "sandbox_gateway.adapters.tenants", None)

    result = runner.invoke(app, [*WHERE, "keys", "list"])

    assert result.exit_code == EXIT_USAGE
    assert "pip install -e ." in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["keys", "create", "--tenant", "acme", "--scope", "admin"], "unknown admin"),
        (["keys", "create", "--tenant", "acme#other"], "--tenant"),
        (["keys", "create", "--tenant", ""], "--tenant"),
        (["keys", "revoke", "sgw_0123456789ab_secret"], "12 hex digits"),
        (["quotas", "set", "acme"], "--reset"),
        (["quotas", "set", "acme", "--max-active-sessions", "0"], "--max-active-sessions"),
        (["quotas", "show", "../acme"], "TENANT"),
        (["usage", "--day", "26/11/2026"], "--day"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_admin_refuses_a_bad_command_line_before_any_storage_call(
    runner: CliRunner, args: list[str], complaint: str
) -> None:
    result = runner.invoke(app, [*WHERE, *args])

    assert result.exit_code == EXIT_USAGE, result.output
    assert complaint in result.stderr
    assert result.stdout == ""


def test_sgw_says_why_it_waits_at_the_live_session_quota(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                headers={"Retry-After": "30"},
                json={
                    "error": {"code": "quota_exceeded", "message": "5 live sessions (max_active_sessions)"}
                },
            ),
            httpx.Response(201, json=SESSION),
        ]
    )
    slept: list[float] = []
    fake = functools.partial(
        Gateway, transport=httpx.MockTransport(lambda request: next(answers)), sleep=slept.append
    )
    monkeypatch.setattr(cli, "Gateway", fake)

    result = runner.invoke(
        app, ["--url", "http://gateway.test", "session", "create"], env={"SGW_API_KEY": None}
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == SESSION["session_id"] + "\n"
    assert "quota_exceeded: 5 live sessions (max_active_sessions); retrying in 30 s" in result.stderr
    assert slept == [30.0]
