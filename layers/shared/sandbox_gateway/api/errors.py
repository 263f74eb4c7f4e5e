"""The one table from domain errors to HTTP statuses, and the one error body shape."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import PurePosixPath

from sandbox_gateway.models import errors

# Looked up along the class hierarchy: the most specific entry wins.
STATUS_BY_ERROR: dict[type[errors.DomainError], HTTPStatus] = {
    errors.InvalidRequest: HTTPStatus.BAD_REQUEST,
    errors.Unauthorized: HTTPStatus.UNAUTHORIZED,
    errors.Forbidden: HTTPStatus.FORBIDDEN,
    errors.QuotaExceeded: HTTPStatus.TOO_MANY_REQUESTS,
    errors.PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.UnsupportedMediaType: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    errors.SessionNotFound: HTTPStatus.NOT_FOUND,
    errors.FileNotFound: HTTPStatus.NOT_FOUND,
    errors.SessionGone: HTTPStatus.GONE,
    errors.SandboxGone: HTTPStatus.GONE,
    errors.SessionBusy: HTTPStatus.CONFLICT,
    errors.SessionNotReady: HTTPStatus.CONFLICT,
    errors.IdempotencyKeyInUse: HTTPStatus.CONFLICT,
    errors.IdempotencyKeyReused: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.ProviderError: HTTPStatus.BAD_GATEWAY,
    errors.ProviderUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.ProviderTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    errors.SandboxDiskFull: HTTPStatus.INSUFFICIENT_STORAGE,
    errors.StorageUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.ExecutionNotFound: HTTPStatus.NOT_FOUND,
    errors.AsyncUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    # Never answered over HTTP (the worker fails the message); mapped so every error has a status.
    errors.InvalidMessage: HTTPStatus.BAD_REQUEST,
}


def status_for(error: errors.DomainError) -> HTTPStatus:
    return status_of(type(error))


def status_of(error_type: type[errors.DomainError]) -> HTTPStatus:
    for cls in error_type.__mro__:
        status = STATUS_BY_ERROR.get(cls)  # type: ignore[call-overload]
        if status is not None:
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def error_body(code: str, message: str, request_id: str | None, **extra: object) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if request_id:
        error["request_id"] = request_id
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


# --- what a caller may read of an error's message ---------------------------------------------
# Provider text is not ours: it can name the host's own directories (the local host keeps each
# sandbox under /tmp/e2b-host-…/<sandbox id>/), container or sandbox ids and OS errno strings.
# A 5xx says what happened in fixed words, plus a detail with every path and id removed.
PROVIDER_MESSAGES = {
    errors.ProviderError.code: "the sandbox provider failed",
    errors.ProviderUnavailable.code: "the sandbox provider is unavailable; retry shortly",
    errors.ProviderNotConfigured.code: "the sandbox provider is not configured",
    errors.ProviderTimeout.code: "the sandbox provider did not answer in time",
    errors.SandboxGone.code: "the session's sandbox no longer exists",
    errors.SandboxDiskFull.code: "the sandbox's disk is full",
}
MAX_MESSAGE_CHARS = 300
# OSError's str(): "[Errno 22] Invalid argument: '/host/path'" (and "-> '/other'" for renames).
_OS_ERROR = re.compile(r"\[Errno -?\d+\]\s*([^:'\"]*)(?::\s*'[^']*')?(?:\s*->\s*'[^']*')?")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"(),;<>]*")
# Sandbox and container ids: long tokens mixing letters and digits (session ids are the caller's).
_ID_LIKE = re.compile(r"\b(?!ses_)(?=[\w-]*\d)(?=[\w-]*[a-zA-Z])[\w-]{12,}\b")


def public_message(error: errors.DomainError, sandbox_roots: Iterable[str]) -> str:
    """The message a caller sees: provider errors in fixed words plus a scrubbed detail;
    any other message with host paths (anything outside the sandbox roots) and OS errno text removed."""
    if isinstance(error, errors.ProviderError):
        fixed = PROVIDER_MESSAGES.get(error.code, PROVIDER_MESSAGES[errors.ProviderError.code])
        detail = _ID_LIKE.sub("<id>", scrub_host_paths(error.message, ()))
        if not detail or detail.startswith(fixed):
            return _capped(detail or fixed)
        return _capped(f"{fixed}: {detail}")
    return _capped(scrub_host_paths(error.message, tuple(sandbox_roots)))


def scrub_host_paths(message: str, sandbox_roots: tuple[str, ...]) -> str:
    """Drop OS errno filenames (always the host's) and absolute paths outside `sandbox_roots`."""
    text = _OS_ERROR.sub(lambda found: found.group(1).strip(), message)

    def keep_sandbox_path(found: re.Match[str]) -> str:
        path = PurePosixPath(posixpath.normpath(found.group(0)))
        inside = any(path.is_relative_to(root) for root in sandbox_roots)
        return found.group(0) if inside else "<path>"

    return _ABSOLUTE_PATH.sub(keep_sandbox_path, text).strip()


def _capped(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
