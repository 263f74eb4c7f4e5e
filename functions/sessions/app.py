"""Sessions function: creating, reading, listing, keeping alive and closing sessions.

The routes live in sandbox_gateway/api/routes/sessions.py; template.yaml sends their paths here."""

from sandbox_gateway.api.app import build_app, lambda_handler_for
from sandbox_gateway.api.routes import sessions

app = build_app([sessions.router])
lambda_handler = lambda_handler_for(app)
