"""The resolver every function uses: validation on, one error shape for every failure, and one
request context (tenant, request id, timings) around each request."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from sandbox_gateway.api.body import max_body_bytes, parse_json_body
from sandbox_gateway.api.context import current_request, request_scope
from sandbox_gateway.api.errors import error_body, public_message, status_for
from sandbox_gateway.config import get_settings
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.observability import logger

# The API's own description is public (template.yaml: `Auth: {Authorizer: NONE}`); every other
# path needs a caller an authorizer vouched for.
PUBLIC_PATHS = frozenset({"/api/openapi.json", "/api/docs"})
# API Gateway's greedy `{file_path+}` takes the rest of the path, slashes included; Powertools'
# `<param>` stops at "/". Routes write `<file_path>`; the compiled pattern takes the rest.
GREEDY_PATH_PARAMETERS = ("file_path",)


class GatewayResolver(APIGatewayHttpResolver):
    def __init__(self) -> None:
        super().__init__(enable_validation=True)
        # Powertools validates the body before any user middleware runs, so the one strict parse
        # step replaces how its validation step reads the body (see api/body.py).
        self._request_validation_middleware = StrictBodyValidation()
        _register_error_answers(self)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Around resolution rather than a route middleware: Powertools runs route middlewares after
        # request validation and not at all for unmatched routes, and those answers need the
        # context (request id) and their Server-Timing too.
        with request_scope(dict(event)) as request:
            if request.caller is not None:
                logger.append_keys(tenant_id=request.caller.tenant_id)
                answer = super().resolve(event, context)
            elif _path_of(event) in PUBLIC_PATHS:
                answer = super().resolve(event, context)
            else:
                # Fail closed: API Gateway's authorizer should have stopped this request; a function
                # reached without one (a route left open by mistake) serves no tenant at all.
                answer = _unauthorized(request.request_id)
            headers = answer.setdefault("headers", {})
            headers["Server-Timing"] = request.timings.header()
        return answer

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}$") -> re.Pattern[str]:
        pattern = APIGatewayHttpResolver._compile_regex(rule, base_regex).pattern
        for name in GREEDY_PATH_PARAMETERS:
            pattern = re.sub(rf"\(\?P<{name}>\[.*?\]\+\)", f"(?P<{name}>.+)", pattern)
        return re.compile(pattern)


def _path_of(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("path") or event.get("rawPath"))


def _unauthorized(request_id: str | None) -> dict[str, Any]:
    body = error_body("unauthorized", "this route needs an API key: Authorization: Bearer <key>", request_id)
    return {
        "statusCode": int(HTTPStatus.UNAUTHORIZED),
        "headers": {"Content-Type": content_types.APPLICATION_JSON, "WWW-Authenticate": "Bearer"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _register_error_answers(app: GatewayResolver) -> None:
    @app.exception_handler(DomainError)
    def domain_error(error: DomainError) -> Response:
        status = status_for(error)
        headers = {"Retry-After": str(error.retry_after_seconds)} if error.retry_after_seconds else None
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.warning("request failed", extra={"error_code": error.code, "status": int(status)})
        message = public_message(error, get_settings().allowed_roots)
        return _json(status, error_body(error.code, message, _request_id()), headers)

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response:
        problems = [_describe(issue) for issue in error.errors()]
        if any(issue.get("type") == "json_invalid" for issue in error.errors()):
            return _json(
                HTTPStatus.BAD_REQUEST,
                error_body("invalid_json", "the request body is not valid JSON", _request_id()),
            )
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return _json(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            error_body("validation_error", message, _request_id(), details=problems),
        )

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response:
        # API Gateway's $default route sends here every request no route matches, whatever its
        # method (API Gateway has no 405). A HEAD answer carries no body.
        if app.current_event.http_method.upper() == "HEAD":
            return _json(HTTPStatus.NOT_FOUND, "")
        return _json(HTTPStatus.NOT_FOUND, error_body("route_not_found", "no such route", _request_id()))

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        # The caller learns only that it failed and the id to quote; the trace stays in the logs.
        logger.exception("unhandled error")
        return _json(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            error_body("internal_error", "the request failed unexpectedly", _request_id()),
        )


class StrictBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading every body through `parse_json_body`."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        return parse_json_body(
            event.body,
            base64_encoded=bool(event.is_base64_encoded),
            content_type=event.headers.get("content-type"),
            max_bytes=max_body_bytes(get_settings().max_file_bytes),
        )


def json_response(status: HTTPStatus, model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return _json(status, model.model_dump(mode="json"), headers)


def _request_id() -> str | None:
    return current_request().request_id


def _json(status: HTTPStatus, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def _describe(issue: dict) -> dict[str, str]:
    location = [str(part) for part in issue.get("loc", ()) if part != "body"] or ["body"]
    message = str(issue.get("msg") or issue.get("type") or "invalid value")
    # Pydantic's "Value error, ..." prefix says nothing to an API caller.
    message = message.removeprefix("Value error, ")
    return {"field": ".".join(location), "message": message}
