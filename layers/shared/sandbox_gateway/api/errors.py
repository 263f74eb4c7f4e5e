"""The one table from domain errors to HTTP statuses, and the one error body shape."""

from __future__ import annotations

from http import HTTPStatus

from sandbox_gateway.models import errors

# Looked up along the class hierarchy: the most specific entry wins.
STATUS_BY_ERROR: dict[type[errors.DomainError], HTTPStatus] = {
    errors.InvalidRequest: HTTPStatus.BAD_REQUEST,
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
}


def status_for(error: errors.DomainError) -> HTTPStatus:
    for cls in type(error).__mro__:
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
