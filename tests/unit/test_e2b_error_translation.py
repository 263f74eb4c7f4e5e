"""The E2B adapter's one translation table: SDK exceptions to domain errors a caller can act on."""

from __future__ import annotations

import e2b
import httpx
import pytest
from pyqwest.httpx._transport import convert_timeout
from sandbox_gateway.adapters.e2b import _domain_error, _sdk_timeout
from sandbox_gateway.models import errors

HOST_PATH_ERROR = (
    "[Errno 22] Invalid argument: '/tmp/e2b-host-defzf3mb/sandboxes/i33a6ea98b0e05a4e5dcd/root/workspace/x'"
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            e2b.SandboxException("403: path '/workspace/l' is outside the sandbox filesystem"),
            errors.InvalidFilePath,
        ),
        (
            e2b.SandboxException("Code.PERMISSION_DENIED: path '/etc/passwd' is outside"),
            errors.InvalidFilePath,
        ),
        (e2b.SandboxException(f"400: {HOST_PATH_ERROR}"), errors.InvalidFilePath),
        (e2b.SandboxException("404: gone"), errors.FileNotFound),
        (e2b.NotFoundException("no such path"), errors.FileNotFound),
        (e2b.FileNotFoundException("no such file"), errors.FileNotFound),
        (e2b.SandboxException("409: is a directory"), errors.InvalidFileOperation),
        (e2b.SandboxException("Code.ALREADY_EXISTS: exists"), errors.InvalidFileOperation),
        (e2b.InvalidArgumentException("path is a directory"), errors.InvalidFileOperation),
        (e2b.SandboxNotFoundException("Paused sandbox i33a6ea98b0e05a4e5dcd not found"), errors.SandboxGone),
        (e2b.SandboxException("500: disk exploded"), errors.ProviderError),
    ],
)
def test_e2b_file_action_refusals_are_the_callers_errors(
    exc: Exception, expected: type[errors.DomainError]
) -> None:
    error = _domain_error(exc, "read the file")
    assert type(error) is expected


@pytest.mark.parametrize(
    "exc", [e2b.TimeoutException("slow"), httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("no")]
)
def test_e2b_a_call_that_is_not_answered_in_time_is_a_timeout(exc: Exception) -> None:
    # The SDK raises httpx's own timeouts on control-plane calls: a hung E2B is a 504, not a 503.
    error = _domain_error(exc, "create the sandbox")
    assert type(error) is errors.ProviderTimeout and error.code == "provider_timeout"


def test_e2b_path_refusal_outside_file_actions_stays_a_provider_error() -> None:
    error = _domain_error(e2b.SandboxException("403: forbidden"), "create the sandbox")
    assert type(error) is errors.ProviderError


def test_e2b_unencodable_text_is_an_invalid_request_not_an_outage() -> None:
    try:
        '"\ud800"'.encode()
    except UnicodeEncodeError as exc:
        error = _domain_error(exc, "run code")
    assert type(error) is errors.InvalidRequest and error.code == "invalid_request"


@pytest.mark.parametrize(
    "exc",
    [
        e2b.SandboxException(f"400: {HOST_PATH_ERROR}"),
        e2b.FileNotFoundException("sandbox i33a6ea98b0e05a4e5dcd: /srv/e2b/i33a6ea98b0e05a4e5dcd/x missing"),
        e2b.InvalidArgumentException(f"cannot open {HOST_PATH_ERROR}"),
    ],
)
def test_e2b_messages_name_no_host_path_or_sandbox_id(exc: Exception) -> None:
    message = _domain_error(exc, "read the file").message
    assert "i33a6ea98b0e05a4e5dcd" not in message
    assert "/tmp" not in message and "/srv" not in message and "e2b-host" not in message


def test_e2b_messages_keep_the_callers_sandbox_path() -> None:
    exc = e2b.SandboxException("403: path '/workspace/link' is outside the sandbox filesystem")
    assert (
        _domain_error(exc, "read the file").message
        == "path '/workspace/link' is outside the sandbox filesystem"
    )


@pytest.mark.parametrize("limit", [1, 2, 5, 25])
def test_e2b_run_code_deadline_is_the_callers_limit(limit: int) -> None:
    # What the SDK's run_code builds from timeout=, and what its pyqwest transport makes of it.
    timeout = httpx.Timeout(_sdk_timeout(limit), connect=10)
    assert convert_timeout({"timeout": timeout.as_dict()}) == pytest.approx(limit)
