"""Files function: a session's files.

The routes live in sandbox_gateway/api/routes/files.py; template.yaml sends their paths here."""

from sandbox_gateway.api.app import build_app, lambda_handler_for
from sandbox_gateway.api.routes import files

app = build_app([files.router])
lambda_handler = lambda_handler_for(app)
