"""Typed Python client for the Sandbox Gateway HTTP API.

from sandbox_gateway_client import Gateway

with Gateway("http://127.0.0.1:3000") as gw, gw.create_session("e2b-python") as session:
    print(session.run("print(6 * 7)").stdout)
    queued = session.submit("import time; time.sleep(60); print('done')", timeout_seconds=120)
    print(gw.wait(queued.execution_id, fetch=True).execution.stdout)
"""

from sandbox_gateway_client.client import Gateway, Progress, Session, SessionFiles
from sandbox_gateway_client.errors import GatewayError
from sandbox_gateway_client.models import (
    CallbackSecret,
    Environment,
    Execution,
    ExecutionError,
    ExecutionFailure,
    ExecutionPage,
    ExecutionRecord,
    FileEntry,
    QueuedExecution,
    Quotas,
    SessionInfo,
    Usage,
    UsageDay,
    WrittenFile,
)
from sandbox_gateway_client.webhooks import verify_signature as verify_signature  # re-exported

__all__ = [
    "CallbackSecret",
    "Environment",
    "Execution",
    "ExecutionError",
    "ExecutionFailure",
    "ExecutionPage",
    "ExecutionRecord",
    "FileEntry",
    "Gateway",
    "GatewayError",
    "Progress",
    "QueuedExecution",
    "Quotas",
    "Session",
    "SessionFiles",
    "SessionInfo",
    "Usage",
    "UsageDay",
    "WrittenFile",
    "verify_signature",
]
