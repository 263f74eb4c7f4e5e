"""Execute route: run code in a session's sandbox; state persists between calls."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import wiring
from sandbox_gateway.api.resolver import build_resolver, current_tenant
from sandbox_gateway.models.api import ExecuteRequest, ExecuteResponse
from sandbox_gateway.observability import logger, metrics, tracer

app = build_resolver()


@app.post("/api/e2b/execute")
@tracer.capture_method(capture_response=False)  # responses carry the user's output
def execute(request: ExecuteRequest) -> ExecuteResponse:
    logger.append_keys(session_id=request.session_id)
    report = wiring.execution_service().execute(
        current_tenant(app),
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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
