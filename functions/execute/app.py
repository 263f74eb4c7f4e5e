"""Execute function: running code in a session's sandbox.

The routes live in sandbox_gateway/api/routes/executions.py; template.yaml sends their paths here."""

from sandbox_gateway.api.app import build_app, lambda_handler_for
from sandbox_gateway.api.routes import executions

app = build_app([executions.router])
lambda_handler = lambda_handler_for(app)
