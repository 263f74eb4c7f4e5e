"""The warm pool's refill, every minute (EventBridge schedule): retires pooled sandboxes past their
age and boots new ones until each environment has its WARM_POOL size (docs/decisions/0010-warm-pool.md).
With WARM_POOL empty (the template's default) it does nothing, and nobody pays for idle sandboxes."""

from dataclasses import asdict

# This function boots sandboxes: import the E2B SDK during init (inside the SnapStart snapshot).
import sandbox_gateway.adapters.e2b  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import snapstart, wiring
from sandbox_gateway.config import get_settings
from sandbox_gateway.observability import logger, metrics, tracer

STOP_BEFORE_TIMEOUT_SECONDS = 10  # a boot may take a few seconds: start none this close to the end

snapstart.register()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if not get_settings().warm_pool:
        return {"booted": 0, "retired": 0, "failed": 0}
    pool = wiring.warm_pool()
    remaining = context.get_remaining_time_in_millis() / 1000 - STOP_BEFORE_TIMEOUT_SECONDS
    report = pool.refill(deadline=pool.now() + max(0.0, remaining))
    metrics.add_metric(name="PooledSandboxesBooted", unit=MetricUnit.Count, value=report.booted)
    metrics.add_metric(name="PooledSandboxesRetired", unit=MetricUnit.Count, value=report.retired)
    metrics.add_metric(name="PooledSandboxBootsFailed", unit=MetricUnit.Count, value=report.failed)
    return asdict(report)
