"""The OpenAPI document: Powertools builds it from the routes; this module adds what routes
declare about failures and fixes the one thing Powertools gets wrong for this API."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from sandbox_gateway.api.errors import status_of
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import ErrorResponse, GatewayRejectionResponse

TITLE = "Sandbox Gateway"
API_VERSION = "1.0.0"
DESCRIPTION = (
    "Sandboxed, stateful code-execution sessions: create a session, run code in it again and "
    "again (state persists between calls), move files in and out, close it. Every error has the "
    'shape {"error": {"code", "message", "request_id"}}.'
)

SECURITY_SCHEME = "ApiKey"
SECURITY_SCHEMES = {
    SECURITY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (sgw_…) from `sgw admin keys create`: Authorization: Bearer <key>",
    }
}
# Every operation can fail on a broken store or an unexpected bug (DomainError: internal_error);
# every body can be malformed.
# Every operation needs an API key (401 without one; 403 when it lacks the route's scope).
ALWAYS = (errors.Unauthorized, errors.Forbidden, errors.StorageUnavailable, errors.DomainError)
BODY = (errors.InvalidJson, errors.PayloadTooLarge, errors.UnsupportedMediaType)
SESSION_GONE = (errors.SessionGone, errors.SessionClosed, errors.SessionExpired, errors.SessionFailed)
PROVIDER_FAILURES = (
    errors.ProviderError,
    errors.ProviderUnavailable,
    errors.ProviderNotConfigured,
    errors.ProviderTimeout,
    errors.SandboxGone,
    errors.SandboxDiskFull,
)
# The gateway in front of the functions refuses a request line or headers over its limits before
# any route runs (API Gateway: 10 KiB; the local gateway: 64 KiB), whatever the operation.
EDGE_LIMITS = {
    HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large",
}
AUTHORIZER_REJECTIONS = (int(HTTPStatus.UNAUTHORIZED), int(HTTPStatus.FORBIDDEN))
# Whatever reaches into a live session's sandbox.
SANDBOX_CALL = (
    errors.SessionNotFound,
    *SESSION_GONE,
    errors.SessionNotReady,
    errors.SessionBusy,
    *PROVIDER_FAILURES,
)


def responses(
    success: HTTPStatus,
    description: str,
    *raised: type[errors.DomainError],
    body: bool = False,
    content: dict[str, Any] | None = None,
) -> dict[int, OpenAPIResponse]:
    """A route's `responses`: its success (schema from the route's return type unless `content`
    is given; none for 204) and each status its errors map to, with the codes each carries.
    Every operation validates its input, so each documents 422 validation_error, which replaces
    the FastAPI-style 422 body Powertools would document: this API answers in its error shape."""
    answers: dict[int, OpenAPIResponse] = {int(success): {"description": description}}
    if content is not None or success == HTTPStatus.NO_CONTENT:
        answers[int(success)]["content"] = content or {}
    codes: dict[int, set[str]] = {int(HTTPStatus.UNPROCESSABLE_ENTITY): {"validation_error"}}
    codes.update({int(status): {code} for status, code in EDGE_LIMITS.items()})
    for error_type in (*raised, *(BODY if body else ()), *ALWAYS):
        codes.setdefault(int(status_of(error_type)), set()).add(error_type.code)
    for status, found in sorted(codes.items()):
        # 401 and 403 also come from API Gateway itself (the authorizer's rejections), in its shape.
        model: Any = ErrorResponse
        if status in AUTHORIZER_REJECTIONS:
            model = ErrorResponse | GatewayRejectionResponse
        answers[status] = {
            "description": f"{HTTPStatus(status).phrase}: {', '.join(sorted(found))}",
            "content": {"application/json": {"model": model}},
        }
    return answers


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    """Drop component schemas nothing refers to (Powertools' own 422 and response-validation
    bodies, which no operation of this API answers with)."""
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [document.get("paths", {})]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(pending.pop())):
            if name not in used and name in schemas:
                used.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - used:
        del schemas[name]
    return document


# The Idempotency-Key header of every route that changes something (create, execute, write).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-128 printable ASCII characters; a retry with the same key and body gets the first "
        "answer (for 24 hours) instead of a second sandbox, run or write; another body: 422",
    ),
]
