"""The resolver every handler uses: validation on, one error shape for every failure."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

from sandbox_gateway.api.body import max_body_bytes, parse_json_body
from sandbox_gateway.api.errors import error_body, public_message, status_for
from sandbox_gateway.api.tenancy import tenant_of
from sandbox_gateway.config import get_settings
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.observability import logger


def build_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    # Powertools validates the body before any user middleware runs, so the one strict parse
    # step replaces how its validation step reads the body (see api/body.py).
    app._request_validation_middleware = StrictBodyValidation()

    def request_id() -> str | None:
        return (app.current_event.raw_event.get("requestContext") or {}).get("requestId")

    @app.exception_handler(DomainError)
    def domain_error(error: DomainError) -> Response:
        status = status_for(error)
        headers = {"Retry-After": str(error.retry_after_seconds)} if error.retry_after_seconds else None
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.warning("request failed", extra={"error_code": error.code, "status": int(status)})
        message = public_message(error, get_settings().allowed_roots)
        return _json(status, error_body(error.code, message, request_id()), headers)

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response:
        problems = [_describe(issue) for issue in error.errors()]
        if any(issue.get("type") == "json_invalid" for issue in error.errors()):
            return _json(
                HTTPStatus.BAD_REQUEST,
                error_body("invalid_json", "the request body is not valid JSON", request_id()),
            )
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return _json(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            error_body("validation_error", message, request_id(), details=problems),
        )

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response:
        # API Gateway's $default route sends here every request no route matches, whatever its
        # method (API Gateway has no 405). A HEAD answer carries no body.
        if app.current_event.http_method.upper() == "HEAD":
            return _json(HTTPStatus.NOT_FOUND, "")
        return _json(HTTPStatus.NOT_FOUND, error_body("route_not_found", "no such route", request_id()))

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        # The caller learns only that it failed and the id to quote; the trace stays in the logs.
        logger.exception("unhandled error")
        return _json(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            error_body("internal_error", "the request failed unexpectedly", request_id()),
        )

    return app


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


def current_tenant(app: APIGatewayHttpResolver) -> str:
    return tenant_of(app.current_event.raw_event, get_settings().default_tenant_id)


def json_response(status: HTTPStatus, model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return _json(status, model.model_dump(mode="json"), headers)


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
