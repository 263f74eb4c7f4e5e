"""One exception class per error `code` the gateway answers with.

The hierarchy follows the server's: `except InvalidRequest` catches every 400 about the request,
`except SessionGone` every ended session, `except ProviderError` every sandbox-backend failure.
A code this client does not know (a newer server) raises `GatewayError` itself, with its `code`.
"""

from __future__ import annotations

from typing import Any

_BY_CODE: dict[str, type[GatewayError]] = {}


class GatewayError(Exception):
    """A request the gateway (or the way to it) did not answer with success.

    `status` is the HTTP status (0 when no answer arrived), `code` the stable machine-readable
    error code (`http_<status>` when the body carried none), `retry_after` the server's
    `Retry-After` in seconds when it sent one.
    """

    code: str = ""  # each subclass names its own; an instance may carry any code

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        request_id: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        # GatewayError itself carries codes this client does not know.
        self.code = code or type(self).code or f"http_{status}"
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_code = cls.__dict__.get("code")  # a subclass without its own code inherits, not registers
        if own_code:
            if own_code in _BY_CODE:
                raise TypeError(f"two exception classes for code {own_code!r}")
            _BY_CODE[own_code] = cls

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no answer"
        text = f"{self.code} ({where}): {self.message}"
        return f"{text} [request {self.request_id}]" if self.request_id else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


def error_for_code(code: str) -> type[GatewayError]:
    """The exception class for an error code; `GatewayError` for a code this client does not know."""
    return _BY_CODE.get(code, GatewayError)


# --- no HTTP answer ----------------------------------------------------------------------------
class ConnectionFailed(GatewayError):
    """The gateway could not be reached, or the connection failed or timed out before an answer."""

    code = "connection_failed"


# --- 400: the request is wrong ----------------------------------------------------------------
class InvalidRequest(GatewayError):
    code = "invalid_request"


class BadRequest(InvalidRequest):
    """The local gateway refused a request it could not parse as HTTP."""

    code = "bad_request"


class InvalidJson(InvalidRequest):
    code = "invalid_json"


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


class InvalidCallbackUrl(InvalidRequest):
    code = "invalid_callback_url"


class InvalidMessage(GatewayError):
    """A queue message the worker refused; never an HTTP answer, listed so every code has a class."""

    code = "invalid_message"


# --- 401 / 403: the key ------------------------------------------------------------------------
class Unauthorized(GatewayError):
    """No valid API key: missing, unknown, malformed or revoked. In a deployed stack API Gateway's
    authorizer answers these itself (a bare 401, or 403 when it refused the key); the client
    raises this class for those too, with their `http_<status>` code."""

    code = "unauthorized"


class Forbidden(GatewayError):
    """The key is valid but lacks the scope of this route group (sessions, execute, files, usage)."""

    code = "forbidden"


# --- 404 ----------------------------------------------------------------------------------------
class SessionNotFound(GatewayError):
    code = "session_not_found"


class FileNotFound(GatewayError):
    code = "file_not_found"


class ExecutionNotFound(GatewayError):
    code = "execution_not_found"


class RouteNotFound(GatewayError):
    code = "route_not_found"


# --- 409: try again shortly (the client retries these itself) ----------------------------------
class SessionBusy(GatewayError):
    code = "session_busy"


class SessionNotReady(GatewayError):
    code = "session_not_ready"


class IdempotencyKeyInUse(GatewayError):
    code = "idempotency_key_in_use"


# --- 410: the session ended -------------------------------------------------------------------
class SessionGone(GatewayError):
    code = "session_gone"


class SessionClosed(SessionGone):
    code = "session_closed"


class SessionExpired(SessionGone):
    code = "session_expired"


class SessionFailed(SessionGone):
    code = "session_failed"


# --- 413 / 415 / 422 ------------------------------------------------------------------------------
class PayloadTooLarge(GatewayError):
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    code = "unsupported_media_type"


class ValidationError(GatewayError):
    """A field missing, of the wrong type, out of bounds or unknown; `details` names each."""

    code = "validation_error"


class IdempotencyKeyReused(GatewayError):
    code = "idempotency_key_reused"


# --- 429 -----------------------------------------------------------------------------------------
class QuotaExceeded(GatewayError):
    """Over one of the tenant's quotas; the message names it. `retry_after` is set only where
    waiting helps (the live-session quota): then the client has already retried."""

    code = "quota_exceeded"


# --- 5xx: the sandbox backend or the gateway failed ----------------------------------------------
class InternalError(GatewayError):
    code = "internal_error"


class MethodNotImplemented(GatewayError):
    code = "method_not_implemented"


class StorageUnavailable(GatewayError):
    code = "storage_unavailable"


class AsyncUnavailable(GatewayError):
    """This deployment runs no queue, bus or results bucket: only synchronous executes."""

    code = "async_unavailable"


class ProviderError(GatewayError):
    code = "provider_error"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class ProviderNotConfigured(ProviderUnavailable):
    code = "provider_not_configured"


class ProviderTimeout(ProviderError):
    code = "provider_timeout"


class SandboxGone(ProviderError):
    code = "sandbox_gone"


class SandboxDiskFull(ProviderError):
    code = "sandbox_disk_full"


__all__ = [
    "BadRequest",
    "ConnectionFailed",
    "FileNotFound",
    "Forbidden",
    "GatewayError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InternalError",
    "InvalidContent",
    "InvalidFileOperation",
    "InvalidFilePath",
    "InvalidJson",
    "InvalidPageToken",
    "InvalidRequest",
    "MethodNotImplemented",
    "PayloadTooLarge",
    "ProviderError",
    "ProviderMismatch",
    "ProviderNotAllowed",
    "ProviderNotConfigured",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RouteNotFound",
    "SandboxDiskFull",
    "SandboxGone",
    "SessionBusy",
    "SessionClosed",
    "SessionExpired",
    "SessionFailed",
    "SessionGone",
    "SessionNotFound",
    "SessionNotReady",
    "StorageUnavailable",
    "Unauthorized",
    "UnknownEnvironment",
    "UnsupportedLanguage",
    "UnsupportedMediaType",
    "ValidationError",
    "error_for_code",
]
