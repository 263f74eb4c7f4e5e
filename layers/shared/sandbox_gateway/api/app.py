"""The application: the resolver with every route group, or with the groups one function serves.

`build_app()` with no arguments is the whole API, the one the OpenAPI document comes from; each
Lambda function builds the same resolver with just its own routers (template.yaml routes to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from sandbox_gateway.api import openapi
from sandbox_gateway.api.resolver import GatewayResolver
from sandbox_gateway.observability import logger, metrics, tracer


def all_routers() -> tuple[Router, ...]:
    # Imported here so a function's cold start imports only the route modules it serves.
    from sandbox_gateway.api.routes import executions, files, meta, sessions, usage  # noqa: PLC0415

    return (sessions.router, usage.router, executions.router, files.router, meta.router)


def build_app(routers: Sequence[Router] | None = None) -> GatewayResolver:
    """The resolver with `routers`; without them, with every route group (the whole API)."""
    app = GatewayResolver()
    for router in all_routers() if routers is None else routers:
        app.include_router(router)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the whole API (served at /api/openapi.json, committed as openapi.json)."""
    document = build_app().get_openapi_schema(
        title=openapi.TITLE,
        version=openapi.API_VERSION,
        description=openapi.DESCRIPTION,
        openapi_version="3.1.0",
        security_schemes=openapi.SECURITY_SCHEMES,  # type: ignore[arg-type]
        security=[{openapi.SECURITY_SCHEME: []}],
    )
    raw = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    return openapi.corrected(raw)


def openapi_text() -> str:
    """The document as served and as committed, byte for byte."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def lambda_handler_for(app: GatewayResolver) -> Callable[[dict, LambdaContext], dict]:
    """A function's entry point: the app, with logs, traces and metrics around each request."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict, context: LambdaContext) -> dict:
        return app.resolve(event, context)

    return lambda_handler
