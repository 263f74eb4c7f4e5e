"""The one table from domain errors to HTTP statuses, and the one error body shape."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from sandbox_gateway.api.errors import STATUS_BY_ERROR, error_body, status_for
from sandbox_gateway.models import errors

EXPECTED_STATUS: dict[type[errors.DomainError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.QuotaExceeded: 429,
    errors.UnknownEnvironment: 400,
    errors.ProviderMismatch: 400,
    errors.ProviderNotAllowed: 400,
    errors.UnsupportedLanguage: 400,
    errors.InvalidFilePath: 400,
    errors.InvalidContent: 400,
    errors.InvalidFileOperation: 400,
    errors.InvalidPageToken: 400,
    errors.InvalidJson: 400,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.SessionNotFound: 404,
    errors.FileNotFound: 404,
    errors.SessionGone: 410,
    errors.SessionClosed: 410,
    errors.SessionExpired: 410,
    errors.SessionFailed: 410,
    errors.SandboxGone: 410,
    errors.SessionBusy: 409,
    errors.SessionNotReady: 409,
    errors.IdempotencyKeyInUse: 409,
    errors.IdempotencyKeyReused: 422,
    errors.ProviderError: 502,
    errors.ProviderUnavailable: 503,
    errors.ProviderNotConfigured: 503,
    errors.StorageUnavailable: 503,
    errors.ProviderTimeout: 504,
    errors.SandboxDiskFull: 507,
    errors.InvalidCallbackUrl: 400,
    errors.InvalidMessage: 400,
    errors.ExecutionNotFound: 404,
    errors.AsyncUnavailable: 503,
}


def all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= all_subclasses(sub)
    return found


# Only the package's own hierarchy: test modules may define throwaway subclasses.
DOMAIN_ERRORS = sorted(
    (cls for cls in all_subclasses(errors.DomainError) if cls.__module__ == errors.__name__),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize(("cls", "status"), EXPECTED_STATUS.items(), ids=lambda v: getattr(v, "__name__", v))
def test_status_for_maps_each_error_to_expected_status(cls: type[errors.DomainError], status: int) -> None:
    assert status_for(cls("something went wrong")) == status


def test_status_for_expectation_table_covers_every_domain_error() -> None:
    assert set(DOMAIN_ERRORS) == set(EXPECTED_STATUS)


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda cls: cls.__name__)
def test_status_for_never_falls_through_to_500(cls: type[errors.DomainError]) -> None:
    status = status_for(cls("x"))
    assert status != HTTPStatus.INTERNAL_SERVER_ERROR
    assert 400 <= status < 600


def test_status_for_bare_domain_error_is_opaque_500() -> None:
    assert status_for(errors.DomainError("x")) == HTTPStatus.INTERNAL_SERVER_ERROR


def test_status_for_unlisted_subclass_inherits_its_parents_status() -> None:
    class VeryGone(errors.SessionExpired):
        code = "very_gone"

    assert status_for(VeryGone("x")) == HTTPStatus.GONE


def test_domain_error_codes_are_distinct_snake_case() -> None:
    codes = [cls.code for cls in DOMAIN_ERRORS]
    assert len(codes) == len(set(codes)), codes
    for code in [*codes, errors.DomainError.code]:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code), code
    # Every class sets its own code rather than inheriting its parent's.
    assert errors.DomainError.code not in codes


def test_status_table_only_lists_domain_errors() -> None:
    assert all(issubclass(cls, errors.DomainError) for cls in STATUS_BY_ERROR)


def test_domain_error_keeps_message_and_retry_after() -> None:
    error = errors.SessionBusy("another execution is running", retry_after_seconds=2)
    assert error.message == str(error) == "another execution is running"
    assert error.retry_after_seconds == 2
    assert errors.SessionNotFound("x").retry_after_seconds is None


def test_error_body_shape() -> None:
    body = error_body("session_not_found", "session ses_1 does not exist", "req-123")
    assert body == {
        "error": {
            "code": "session_not_found",
            "message": "session ses_1 does not exist",
            "request_id": "req-123",
        }
    }


def test_error_body_adds_extras_and_drops_none_extras() -> None:
    details = [{"field": "code", "message": "Field required"}]
    body = error_body("validation_error", "code: Field required", "req-1", details=details, hint=None)
    assert body == {
        "error": {
            "code": "validation_error",
            "message": "code: Field required",
            "request_id": "req-1",
            "details": details,
        }
    }


def test_error_body_without_request_id_keeps_code_and_message() -> None:
    error = error_body("internal_error", "the request failed unexpectedly", None)["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["message"]) == ("internal_error", "the request failed unexpectedly")
