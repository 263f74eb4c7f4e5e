"""Domain errors. HTTP-agnostic: api/errors.py maps each class to a status in one table."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can be told about. `code` is stable and machine-readable."""

    code = "internal_error"

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds


# --- the request itself is wrong (4xx) ---------------------------------------------------
class InvalidRequest(DomainError):
    code = "invalid_request"


class UnknownEnvironment(InvalidRequest):
    code = "unknown_environment"


class ProviderMismatch(InvalidRequest):
    code = "provider_mismatch"


class ProviderNotAllowed(InvalidRequest):
    code = "provider_not_allowed"


class UnsupportedLanguage(InvalidRequest):
    code = "unsupported_language"


class InvalidFilePath(InvalidRequest):
    code = "invalid_file_path"


class InvalidContent(InvalidRequest):
    code = "invalid_content"


class InvalidFileOperation(InvalidRequest):
    code = "invalid_file_operation"


class InvalidPageToken(InvalidRequest):
    code = "invalid_page_token"


class Unauthorized(DomainError):
    """No API key vouched for this request (or the authorizer did not run)."""

    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class QuotaExceeded(DomainError):
    """Over one of the tenant's quotas; `retry_after_seconds` when waiting can help."""

    code = "quota_exceeded"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class SessionNotFound(DomainError):
    code = "session_not_found"


class FileNotFound(DomainError):
    code = "file_not_found"


class SessionGone(DomainError):
    """The session exists but can no longer be used (closed, expired, failed)."""

    code = "session_gone"


class SessionClosed(SessionGone):
    code = "session_closed"


class SessionExpired(SessionGone):
    code = "session_expired"


class SessionFailed(SessionGone):
    code = "session_failed"


class SessionBusy(DomainError):
    """Another execution holds the session's kernel; retrying shortly will work."""

    code = "session_busy"


class SessionNotReady(DomainError):
    code = "session_not_ready"


# --- the sandbox backend is wrong (5xx) --------------------------------------------------
class ProviderError(DomainError):
    code = "provider_error"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class ProviderNotConfigured(ProviderUnavailable):
    code = "provider_not_configured"


class ProviderTimeout(ProviderError):
    code = "provider_timeout"


class SandboxGone(ProviderError):
    """The provider no longer has the sandbox (expired, killed behind our back)."""

    code = "sandbox_gone"


class SandboxDiskFull(ProviderError):
    code = "sandbox_disk_full"


class StorageUnavailable(DomainError):
    code = "storage_unavailable"


class IdempotencyKeyInUse(DomainError):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_key_in_use"


class IdempotencyKeyReused(DomainError):
    """The Idempotency-Key was used before with a different request body."""

    code = "idempotency_key_reused"


class InvalidJson(InvalidRequest):
    """The body is not bounded, strict JSON: malformed, too deep, duplicate keys, not UTF-8, …"""

    code = "invalid_json"


class UnsupportedMediaType(DomainError):
    """A body sent as anything but application/json."""

    code = "unsupported_media_type"


class InvalidCallbackUrl(InvalidRequest):
    """A callback_url that is not https, or whose host is (or resolves to) a private, loopback,
    link-local, shared or metadata address."""

    code = "invalid_callback_url"


class ExecutionNotFound(DomainError):
    code = "execution_not_found"


class AsyncUnavailable(DomainError):
    """This deployment has no queue, bus or results bucket configured."""

    code = "async_unavailable"


class InvalidMessage(DomainError):
    """A queue message or event that does not match schemas/execution-requested.schema.json, or
    names a tenant that does not exist. Never an HTTP answer: the worker fails the message."""

    code = "invalid_message"
