"""The reaper, every minute (EventBridge schedule): ends expired sessions of every tenant and
kills their sandboxes, so nothing outlives its session by more than about a minute."""

from dataclasses import asdict

# This function reaches sandboxes: import the E2B SDK during init (inside the SnapStart
# snapshot) rather than on its first request. Meta and the authorizer never import it.
import sandbox_gateway.adapters.e2b  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import snapstart, wiring
from sandbox_gateway.observability import logger, metrics, tracer

STOP_BEFORE_TIMEOUT_SECONDS = 5  # leave time to record the last session and publish metrics

snapstart.register()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    service = wiring.reaper_service()
    remaining = context.get_remaining_time_in_millis() / 1000 - STOP_BEFORE_TIMEOUT_SECONDS
    report = service.sweep(deadline=service.now() + max(0.0, remaining))
    metrics.add_metric(name="SessionsReaped", unit=MetricUnit.Count, value=report.expired)
    metrics.add_metric(name="SandboxesReaped", unit=MetricUnit.Count, value=report.sandboxes_killed)
    metrics.add_metric(name="ReapRetriesLater", unit=MetricUnit.Count, value=report.retry_later)
    metrics.add_metric(name="OrphanSandboxesRemoved", unit=MetricUnit.Count, value=report.orphans_removed)
    return asdict(report)
