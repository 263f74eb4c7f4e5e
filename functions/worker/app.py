"""Worker function: runs queued executions (async API calls, SQS messages, ExecutionRequested
events). The handler lives in sandbox_gateway/worker.py; template.yaml's queue triggers it."""

# This function reaches sandboxes: import the E2B SDK during init (inside the SnapStart
# snapshot) rather than on its first request. Meta and the authorizer never import it.
import sandbox_gateway.adapters.e2b  # noqa: F401
from sandbox_gateway import snapstart
from sandbox_gateway.worker import lambda_handler

snapstart.register()

__all__ = ["lambda_handler"]
