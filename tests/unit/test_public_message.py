"""public_message: what a caller may read of an error (no host paths, no sandbox ids, no errno text)."""

from __future__ import annotations

import pytest
from sandbox_gateway.api.errors import MAX_MESSAGE_CHARS, PROVIDER_MESSAGES, public_message
from sandbox_gateway.models import errors

ROOTS = ("/workspace", "/home/user", "/tmp")
HOST_ERRNO = "[Errno 22] Invalid argument: '/tmp/e2b-host-xyz/sbx_abc/fs/workspace/x'"


@pytest.mark.parametrize(
    "cls",
    [
        errors.ProviderError,
        errors.ProviderUnavailable,
        errors.ProviderTimeout,
        errors.SandboxGone,
        errors.SandboxDiskFull,
        errors.InvalidFileOperation,
        errors.FileNotFound,
    ],
)
def test_public_message_drops_the_hosts_path_from_an_os_error(cls: type[errors.DomainError]) -> None:
    message = public_message(cls(HOST_ERRNO), ROOTS)

    assert "e2b-host" not in message and "sbx_abc" not in message and "/tmp" not in message
    assert "Errno" not in message
    assert "Invalid argument" in message


def test_public_message_of_a_provider_error_is_fixed_words_plus_a_scrubbed_detail() -> None:
    message = public_message(errors.ProviderError(HOST_ERRNO), ROOTS)

    assert message == "the sandbox provider failed: Invalid argument"


@pytest.mark.parametrize("cls", [errors.ProviderError, errors.ProviderTimeout, errors.SandboxGone])
def test_public_message_of_a_provider_error_never_shows_a_path_or_an_id(
    cls: type[errors.DomainError],
) -> None:
    raw = "container 3f4e5d6c7b8a9f0e1d2c failed at /workspace/x (sandbox i0a1b2c3d4e5f6a7b8c9d)"

    message = public_message(cls(raw), ROOTS)

    assert message.startswith(PROVIDER_MESSAGES[cls.code])
    for secret in ("3f4e5d6c7b8a9f0e1d2c", "/workspace/x", "i0a1b2c3d4e5f6a7b8c9d"):
        assert secret not in message


def test_public_message_keeps_the_callers_sandbox_path_and_session_id() -> None:
    assert public_message(errors.FileNotFound("/workspace/a b.txt does not exist"), ROOTS) == (
        "/workspace/a b.txt does not exist"
    )
    session = "session 'ses_01a218af81fac903530f3851645d' not found"
    assert public_message(errors.SessionNotFound(session), ROOTS) == session


@pytest.mark.parametrize(
    "host_path",
    [
        "/var/lib/docker/overlay2/abc/merged/x",
        "/root/.e2b/key",
        "/home/dev/project",
        "/workspace/../etc/passwd",
    ],
)
def test_public_message_replaces_paths_outside_the_sandbox_roots(host_path: str) -> None:
    message = public_message(errors.InvalidFileOperation(f"cannot open {host_path} now"), ROOTS)

    assert message == "cannot open <path> now"


def test_public_message_is_capped() -> None:
    assert len(public_message(errors.InvalidRequest("x" * 10_000), ROOTS)) == MAX_MESSAGE_CHARS


def test_public_message_of_an_empty_provider_message_is_the_fixed_words() -> None:
    assert public_message(errors.ProviderTimeout(""), ROOTS) == PROVIDER_MESSAGES["provider_timeout"]
