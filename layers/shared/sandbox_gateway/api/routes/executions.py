"""/api/e2b/execute and /api/executions: run code now (sync) or queue it (async), read
executions back, and the tenant's callback signing secret."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from sandbox_gateway import wiring
from sandbox_gateway.api.context import current_request
from sandbox_gateway.api.openapi import SANDBOX_CALL, IdempotencyKey, responses
from sandbox_gateway.api.resolver import json_response
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import (
    CallbackSecretResponse,
    ExecuteRequest,
    ExecuteResponse,
    ExecutionListResponse,
    ExecutionQueuedResponse,
    ExecutionResponse,
)
from sandbox_gateway.models.execution_record import ExecutionRecord
from sandbox_gateway.observability import logger, metrics, tracer
from sandbox_gateway.services.orchestration import ExecutionView, execution_payload

router = Router()
SCOPE = "execute"  # what a key needs for these routes
TAGS = ["executions"]


@router.post(
    "/api/e2b/execute",
    summary="Run code in a session (variables persist between calls), now or queued",
    tags=TAGS,
    responses={
        **responses(
            HTTPStatus.OK,
            "What the code printed and returned; a raised error or timeout is a 200 with its status",
            errors.InvalidRequest,  # code over its size limit, a timeout over the sync limit
            errors.InvalidCallbackUrl,
            errors.UnknownEnvironment,
            errors.UnsupportedLanguage,
            errors.QuotaExceeded,
            errors.IdempotencyKeyInUse,
            errors.IdempotencyKeyReused,
            errors.AsyncUnavailable,
            *SANDBOX_CALL,
            body=True,
            content={"application/json": {"model": ExecuteResponse}},
        ),
        int(HTTPStatus.ACCEPTED): {
            "description": '"mode": "async": queued; the Location header is the execution\'s URL',
            "content": {"application/json": {"model": ExecutionQueuedResponse}},
        },
    },
)
@tracer.capture_method(capture_response=False)  # responses carry the user's output
def execute(request: ExecuteRequest, idempotency_key: IdempotencyKey = None) -> Response[Any]:
    tenant = current_request().tenant_for(SCOPE)
    logger.append_keys(session_id=request.session_id)
    orchestrator = wiring.orchestrator()
    first: dict[str, Any] = {}  # the body when this request ran it (not a replay)

    def run() -> dict[str, Any]:
        if request.mode == "async":
            first["record"] = orchestrator.submit(
                tenant,
                session_id=request.session_id,
                environment=request.environment,
                code=request.code,
                language=request.language,
                timeout_seconds=request.timeout_seconds,
                envs=request.envs,
                callback_url=request.callback_url,
            )
            return {"execution_id": first["record"].execution_id}
        assert request.session_id is not None  # sync needs one (ExecuteRequest checks)
        first["body"] = orchestrator.run_sync(
            tenant,
            request.session_id,
            code=request.code,
            language=request.language,
            timeout_seconds=request.timeout_seconds,
            envs=request.envs,
        )
        _count(first["body"])
        # Only the id is kept with the key: a replay renders the stored execution, however large.
        return {"execution_id": first["body"]["execution_id"]}

    if idempotency_key is None:
        answer = run()
    else:
        payload = request.model_dump(mode="json")
        answer = wiring.idempotent("execute").run(
            tenant, idempotency_key, payload, run, router.lambda_context
        )
    if request.mode == "async":
        record = first.get("record") or orchestrator.get(tenant, answer["execution_id"])
        return _queued(record)
    body = first.get("body") or orchestrator.replay_sync(tenant, answer["execution_id"])
    return json_response(HTTPStatus.OK, ExecuteResponse.model_validate(body))


def _count(body: dict[str, Any]) -> None:
    metrics.add_metric(name="Executions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="ExecutionErrors", unit=MetricUnit.Count, value=int(body.get("error") is not None)
    )
    metrics.add_metric(
        name="ProviderLatency", unit=MetricUnit.Milliseconds, value=body["sandbox_duration_ms"]
    )
    logger.info(
        "executed",
        extra={"language": body["language"], "status": body["status"], "truncated": body["truncated"]},
    )


def _queued(record: ExecutionRecord) -> Response[Any]:
    href = f"/api/executions/{record.execution_id}"
    metrics.add_metric(name="ExecutionsQueued", unit=MetricUnit.Count, value=1)
    body = ExecutionQueuedResponse(
        execution_id=record.execution_id,
        status=record.state.value,
        session_id=record.session_id,
        environment=record.environment,
        href=href,
    )
    return json_response(HTTPStatus.ACCEPTED, body, headers={"Location": href})


@router.get(
    "/api/executions/<execution_id>",
    summary="Read an execution: its status and, once finished, its result",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "The execution", errors.ExecutionNotFound),
)
def get_execution(execution_id: str) -> ExecutionResponse:
    view = wiring.orchestrator().view(current_request().tenant_for(SCOPE), execution_id)
    return _execution(view)


@router.get(
    "/api/sessions/<session_id>/executions",
    summary="List a session's executions, newest first (results via GET /api/executions/{id})",
    tags=TAGS,
    responses=responses(
        HTTPStatus.OK, "A page of executions", errors.SessionNotFound, errors.InvalidPageToken
    ),
)
def list_session_executions(
    session_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    next_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> ExecutionListResponse:
    tenant = current_request().tenant_for(SCOPE)
    page = wiring.orchestrator().list_for_session(tenant, session_id, limit, next_token)
    # Listed without their results (a page of large results would not fit a response).
    listed = [_execution(ExecutionView(record, None)) for record in page.executions]
    return ExecutionListResponse(executions=listed, next_token=page.next_token)


@router.get(
    "/api/callbacks/secret",
    summary="The key that signs this tenant's callbacks (Sandbox-Gateway-Signature)",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "The signing secret"),
)
def get_callback_secret() -> CallbackSecretResponse:
    return CallbackSecretResponse(
        secret=wiring.callback_secrets().secret(current_request().tenant_for(SCOPE))
    )


@router.post(
    "/api/callbacks/secret",
    summary="Replace this tenant's callback signing secret (the old one stops signing at once)",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "The new signing secret"),
)
def rotate_callback_secret() -> CallbackSecretResponse:
    return CallbackSecretResponse(
        secret=wiring.callback_secrets().rotate(current_request().tenant_for(SCOPE))
    )


def _execution(view: ExecutionView) -> ExecutionResponse:
    return ExecutionResponse.model_validate(execution_payload(view))
