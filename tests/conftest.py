"""Shared test setup. Fake AWS credentials and Powertools settings come before any handler import."""

from __future__ import annotations

import os

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "sandbox-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "SandboxGatewayTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "TABLE_NAME": "sandbox-gateway-sessions-test",
    }
)
for leaked in (
    "E2B_API_KEY",
    "E2B_API_URL",
    "E2B_SANDBOX_URL",
    "E2B_API_KEY_SECRET_ID",
    "AWS_SAM_LOCAL",
    "LOCAL_MODE",
):
    os.environ.pop(leaked, None)
