"""Meta function: the environment catalogue, the OpenAPI document and its Swagger UI, and
every request no route matches (the $default route answers 404 route_not_found).

The routes live in sandbox_gateway/api/routes/meta.py; template.yaml sends their paths here."""

from sandbox_gateway import snapstart
from sandbox_gateway.api.app import build_app, lambda_handler_for
from sandbox_gateway.api.routes import meta

app = build_app([meta.router])
lambda_handler = lambda_handler_for(app)
snapstart.register()
