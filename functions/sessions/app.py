"""Sessions function: creating, reading, listing, keeping alive and closing sessions, and the
tenant's usage.

The routes live in sandbox_gateway/api/routes/{sessions,usage}.py; template.yaml sends their paths here."""

# This function reaches sandboxes: import the E2B SDK during init (inside the SnapStart
# snapshot) rather than on its first request. Meta and the authorizer never import it.
import sandbox_gateway.adapters.e2b  # noqa: F401
from sandbox_gateway import snapstart
from sandbox_gateway.api.app import build_app, lambda_handler_for
from sandbox_gateway.api.routes import sessions, usage

app = build_app([sessions.router, usage.router])
lambda_handler = lambda_handler_for(app)
snapstart.register()
