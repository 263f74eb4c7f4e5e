"""Worker function: runs queued executions (async API calls, SQS messages, ExecutionRequested
events). The handler lives in sandbox_gateway/worker.py; template.yaml's queue triggers it."""

from sandbox_gateway.worker import lambda_handler

__all__ = ["lambda_handler"]
