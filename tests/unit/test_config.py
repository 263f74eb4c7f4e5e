"""Settings.from_environ: one settings model, read from an environment mapping, checked at load."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from sandbox_gateway import wiring
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Language, Provider

CUSTOM = {
    "name": "data-science",
    "provider": "e2b",
    "template": "ds-template",
    "default_language": "python",
    "languages": ["python", "bash"],
    "allow_internet_access": True,
    "memory_mb": 2048,
}


def test_settings_from_environ_defaults() -> None:
    settings = Settings.from_environ({})
    assert settings.table_name == "sandbox-gateway-sessions"
    assert settings.e2b_api_key is None
    assert settings.e2b_api_key_secret_id is None
    assert settings.session_timeout_default_seconds == 900
    assert settings.session_timeout_max_seconds == 3600
    assert settings.execution_timeout_default_seconds == 20
    assert settings.execution_timeout_max_seconds == 25
    assert settings.max_response_bytes == 5_000_000
    assert settings.allowed_roots == ("/workspace", "/home/user", "/tmp")
    assert settings.workspace_root == "/workspace"
    assert settings.local_mode is False
    assert settings.custom_environments == ()
    assert settings.e2b_output_limit_bytes == 8 * 1024 * 1024


def test_settings_from_environ_ignores_unrelated_and_lower_case_names() -> None:
    settings = Settings.from_environ({"table_name": "lower", "HOME": "/root", "PATH": "/usr/bin"})
    assert settings.table_name == "sandbox-gateway-sessions"


def test_settings_from_environ_maps_upper_case_names_to_fields() -> None:
    settings = Settings.from_environ(
        {
            "TABLE_NAME": "my-table",
            "DYNAMODB_ENDPOINT_URL": "http://localhost:8000",
            "E2B_API_KEY": "e2b_test",
            "E2B_API_URL": "http://localhost:49982",
            "E2B_REQUEST_TIMEOUT_SECONDS": "5.5",
            "E2B_OUTPUT_LIMIT_BYTES": "65536",
            "SESSION_TIMEOUT_DEFAULT_SECONDS": "120",
            "SESSION_TIMEOUT_MAX_SECONDS": "7200",
            "EXECUTION_TIMEOUT_DEFAULT_SECONDS": "10",
            "MAX_RESPONSE_BYTES": "1000000",
            "MAX_FILE_BYTES": "2048",
            "LOCAL_MODE": "true",
        }
    )
    assert settings.table_name == "my-table"
    assert settings.dynamodb_endpoint_url == "http://localhost:8000"
    assert settings.e2b_api_key == "e2b_test"
    assert settings.e2b_api_url == "http://localhost:49982"
    assert settings.e2b_request_timeout_seconds == 5.5
    assert settings.e2b_output_limit_bytes == 65536
    assert settings.session_timeout_default_seconds == 120
    assert settings.session_timeout_max_seconds == 7200
    assert settings.execution_timeout_default_seconds == 10
    assert settings.max_response_bytes == 1_000_000
    assert settings.max_file_bytes == 2048
    assert settings.local_mode is True


def test_settings_from_environ_treats_empty_values_as_unset() -> None:
    settings = Settings.from_environ({"TABLE_NAME": "", "E2B_API_KEY": "", "CUSTOM_ENVIRONMENTS": ""})
    assert settings.table_name == "sandbox-gateway-sessions"
    assert settings.e2b_api_key is None
    assert settings.custom_environments == ()


def test_settings_does_not_reveal_api_key_in_repr() -> None:
    settings = Settings.from_environ({"E2B_API_KEY": "e2b_super_secret"})
    assert "e2b_super_secret" not in repr(settings)


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_settings_from_environ_aws_sam_local_turns_on_local_mode(value: str) -> None:
    assert Settings.from_environ({"AWS_SAM_LOCAL": value}).local_mode is True


def test_settings_from_environ_aws_sam_local_overrides_local_mode_false() -> None:
    assert Settings.from_environ({"AWS_SAM_LOCAL": "true", "LOCAL_MODE": "false"}).local_mode is True


@pytest.mark.parametrize("value", ["false", "", "1", "yes-please"])
def test_settings_from_environ_aws_sam_local_other_values_leave_local_mode_off(value: str) -> None:
    assert Settings.from_environ({"AWS_SAM_LOCAL": value}).local_mode is False


def test_settings_from_environ_parses_custom_environments() -> None:
    settings = Settings.from_environ({"CUSTOM_ENVIRONMENTS": json.dumps([CUSTOM])})
    (custom,) = settings.custom_environments
    assert custom.name == "data-science"
    assert custom.provider is Provider.E2B
    assert custom.languages == (Language.PYTHON, Language.BASH)
    assert custom.allow_internet_access is True
    assert custom.memory_mb == 2048


def test_settings_from_environ_parses_empty_custom_environment_list() -> None:
    assert Settings.from_environ({"CUSTOM_ENVIRONMENTS": "[]"}).custom_environments == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[{", "not valid JSON"),
        ("not json", "not valid JSON"),
        (json.dumps(CUSTOM), "must be a JSON list"),
        ('"e2b-python"', "must be a JSON list"),
        ("42", "must be a JSON list"),
    ],
)
def test_settings_from_environ_rejects_malformed_custom_environments(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="CUSTOM_ENVIRONMENTS") as caught:
        Settings.from_environ({"CUSTOM_ENVIRONMENTS": text})
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({**CUSTOM, "name": "Bad Name"}, "name"),
        ({**CUSTOM, "provider": "lambda"}, "provider"),
        ({**CUSTOM, "default_language": "ruby"}, "default_language"),
        ({**CUSTOM, "default_language": "javascript"}, "default_language must be one of its languages"),
        ({**CUSTOM, "typo_field": 1}, "typo_field"),
        ({k: v for k, v in CUSTOM.items() if k != "template"}, "template"),
        ("e2b-python", "custom_environments"),
    ],
)
def test_settings_from_environ_rejects_invalid_custom_environment(entry: object, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_environ({"CUSTOM_ENVIRONMENTS": json.dumps([entry])})
    assert problem in str(caught.value)


def test_settings_from_environ_rejects_default_above_max_session_timeout() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_environ(
            {"SESSION_TIMEOUT_DEFAULT_SECONDS": "7200", "SESSION_TIMEOUT_MAX_SECONDS": "3600"}
        )
    assert "SESSION_TIMEOUT_DEFAULT_SECONDS exceeds SESSION_TIMEOUT_MAX_SECONDS" in str(caught.value)


def test_settings_from_environ_rejects_default_above_max_execution_timeout() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_environ({"EXECUTION_TIMEOUT_DEFAULT_SECONDS": "26"})
    assert "EXECUTION_TIMEOUT_DEFAULT_SECONDS exceeds EXECUTION_TIMEOUT_MAX_SECONDS" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXECUTION_TIMEOUT_MAX_SECONDS", "28"),  # API Gateway cuts at 30 s
        ("MAX_RESPONSE_BYTES", "6000000"),  # Lambda's 6 MB cliff
        ("MAX_RESPONSE_BYTES", "9999"),
        ("MAX_FILE_BYTES", "5000000"),
        ("SESSION_TIMEOUT_MAX_SECONDS", "86401"),
        ("E2B_REQUEST_TIMEOUT_SECONDS", "0"),
        ("E2B_OUTPUT_LIMIT_BYTES", "1023"),
        ("E2B_OUTPUT_LIMIT_BYTES", str(64 * 1024 * 1024 + 1)),  # held in the function's memory
        ("SESSION_TIMEOUT_DEFAULT_SECONDS", "ten"),
    ],
)
def test_settings_from_environ_rejects_out_of_range_values(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_environ({name: value})
    assert name.lower() in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/workspace,/data", ("/workspace", "/data")),
        (" /workspace , /home/user ,, ", ("/workspace", "/home/user")),
        ("/workspace", ("/workspace",)),
    ],
)
def test_settings_from_environ_parses_allowed_roots_comma_list(value: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_environ({"ALLOWED_ROOTS": value}).allowed_roots == expected


def test_settings_from_environ_accepts_workspace_root_among_roots() -> None:
    settings = Settings.from_environ({"ALLOWED_ROOTS": "/data,/out", "WORKSPACE_ROOT": "/data"})
    assert (settings.allowed_roots, settings.workspace_root) == (("/data", "/out"), "/data")


@pytest.mark.parametrize(
    "environ",
    [
        {"WORKSPACE_ROOT": "/data"},
        {"ALLOWED_ROOTS": "/home/user,/tmp"},
        {"ALLOWED_ROOTS": "/data", "WORKSPACE_ROOT": "/data/sub"},
    ],
)
def test_settings_from_environ_rejects_workspace_root_not_among_roots(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_environ(environ)
    assert "WORKSPACE_ROOT must be one of ALLOWED_ROOTS" in str(caught.value)


def test_wiring_gives_the_e2b_provider_its_output_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_OUTPUT_LIMIT_BYTES", "65536")
    wiring.reset()
    try:
        assert wiring.e2b_provider()._output_limit == 65536
    finally:
        monkeypatch.delenv("E2B_OUTPUT_LIMIT_BYTES")
        wiring.reset()
