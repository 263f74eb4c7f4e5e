"""/api/sessions: create, list, read, keep alive and close sessions."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from sandbox_gateway import wiring
from sandbox_gateway.api.context import current_request
from sandbox_gateway.api.openapi import PROVIDER_FAILURES, SANDBOX_CALL, IdempotencyKey, responses
from sandbox_gateway.api.resolver import json_response
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import (
    CreateSessionRequest,
    KeepAliveRequest,
    SessionListResponse,
    SessionResponse,
)
from sandbox_gateway.observability import logger, metrics

router = Router()
SCOPE = "sessions"  # what a key needs for these routes
TAGS = ["sessions"]


@router.post(
    "/api/sessions",
    status_code=HTTPStatus.CREATED,
    summary="Create a session (starts its sandbox)",
    tags=TAGS,
    responses=responses(
        HTTPStatus.CREATED,
        "The new session, active (or the first answer to this Idempotency-Key)",
        errors.InvalidRequest,  # a malformed Idempotency-Key
        errors.UnknownEnvironment,
        errors.ProviderMismatch,
        errors.ProviderNotAllowed,
        errors.IdempotencyKeyInUse,
        errors.IdempotencyKeyReused,
        errors.QuotaExceeded,
        *PROVIDER_FAILURES,
        body=True,
    ),
)
def create_session(
    request: CreateSessionRequest, idempotency_key: IdempotencyKey = None
) -> Response[SessionResponse]:
    tenant = current_request().tenant_for(SCOPE)

    def create() -> dict:
        session = wiring.session_service().create(tenant, **request.model_dump())
        logger.append_keys(session_id=session.session_id)
        metrics.add_metric(name="SessionsCreated", unit=MetricUnit.Count, value=1)
        return SessionResponse.from_domain(session).model_dump(mode="json")

    if idempotency_key is None:
        body = create()
    else:
        payload = request.model_dump(mode="json")
        body = wiring.idempotent_create().run(tenant, idempotency_key, payload, create, router.lambda_context)
    # An explicit 201 rather than the decorator's: Powertools looks that up in per-request state
    # that a nested request (a concurrent retry, in the tests) would have cleared.
    return json_response(HTTPStatus.CREATED, SessionResponse.model_validate(body))


@router.get(
    "/api/sessions",
    summary="List the caller's sessions, newest first",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "A page of sessions", errors.InvalidPageToken),
)
def list_sessions(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    next_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> SessionListResponse:
    page = wiring.session_service().list(current_request().tenant_for(SCOPE), limit, next_token)
    return SessionListResponse(
        sessions=[SessionResponse.from_domain(s) for s in page.sessions], next_token=page.next_token
    )


@router.get(
    "/api/sessions/<session_id>",
    summary="Read a session",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "The session", errors.SessionNotFound),
)
def get_session(session_id: str) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    return SessionResponse.from_domain(
        wiring.session_service().get(current_request().tenant_for(SCOPE), session_id)
    )


@router.post(
    "/api/sessions/<session_id>/keepalive",
    summary="Extend a session's lifetime (and its sandbox's)",
    tags=TAGS,
    # InvalidRequest: a lifetime over the maximum.
    responses=responses(
        HTTPStatus.OK, "The session", errors.InvalidRequest, errors.QuotaExceeded, *SANDBOX_CALL, body=True
    ),
)
def keep_alive(session_id: str, request: KeepAliveRequest) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    session = wiring.session_service().keep_alive(
        current_request().tenant_for(SCOPE), session_id, request.timeout_seconds
    )
    return SessionResponse.from_domain(session)


@router.delete(
    "/api/sessions/<session_id>",
    summary="Close a session and kill its sandbox (safe to repeat)",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "The session, closed", errors.SessionNotFound, *PROVIDER_FAILURES),
)
def close_session(session_id: str) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    session = wiring.session_service().close(current_request().tenant_for(SCOPE), session_id)
    metrics.add_metric(name="SessionsClosed", unit=MetricUnit.Count, value=1)
    return SessionResponse.from_domain(session)
