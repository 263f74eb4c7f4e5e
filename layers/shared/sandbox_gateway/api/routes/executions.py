"""/api/e2b/execute: run code in a session's sandbox; state persists between calls."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

from http import HTTPStatus

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from sandbox_gateway import wiring
from sandbox_gateway.api.context import current_request
from sandbox_gateway.api.openapi import SANDBOX_CALL, responses
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import ExecuteRequest, ExecuteResponse
from sandbox_gateway.observability import logger, metrics, tracer

router = Router()
SCOPE = "execute"  # what a key needs for these routes


@router.post(
    "/api/e2b/execute",
    summary="Run code in a session (variables persist between calls)",
    tags=["executions"],
    responses=responses(
        HTTPStatus.OK,
        "What the code printed and returned; a raised error or timeout is a 200 with its status",
        errors.InvalidRequest,  # code over its size limit, timeout over the maximum
        errors.UnsupportedLanguage,
        errors.QuotaExceeded,
        *SANDBOX_CALL,
        body=True,
    ),
)
@tracer.capture_method(capture_response=False)  # responses carry the user's output
def execute(request: ExecuteRequest) -> ExecuteResponse:
    logger.append_keys(session_id=request.session_id)
    report = wiring.execution_service().execute(
        current_request().tenant_for(SCOPE),
        request.session_id,
        code=request.code,
        language=request.language,
        timeout_seconds=request.timeout_seconds,
        envs=request.envs,
    )
    outcome = report.outcome
    metrics.add_dimension(name="Provider", value=report.session.provider.value)
    metrics.add_metric(name="Executions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ExecutionErrors", unit=MetricUnit.Count, value=int(outcome.error is not None))
    metrics.add_metric(
        name="ProviderLatency", unit=MetricUnit.Milliseconds, value=outcome.sandbox_duration_ms
    )
    logger.info(
        "executed",
        extra={
            "language": report.language.value,
            "status": outcome.status.value,
            "truncated": outcome.truncated,
        },
    )
    return ExecuteResponse.from_domain(request.session_id, report.language.value, outcome, report.duration_ms)
