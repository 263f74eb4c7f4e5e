"""/api/environments and the API's own description: /api/openapi.json and /api/docs."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

from functools import cache
from http import HTTPStatus
from importlib.resources import files
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

from sandbox_gateway import wiring
from sandbox_gateway.api.openapi import responses
from sandbox_gateway.models.api import EnvironmentListResponse, EnvironmentResponse

router = Router()


@router.get(
    "/api/environments",
    summary="The environments sessions can be created in",
    tags=["environments"],
    responses=responses(HTTPStatus.OK, "The environments"),
)
def list_environments() -> EnvironmentListResponse:
    environments = wiring.catalogue().available()
    return EnvironmentListResponse(environments=[EnvironmentResponse.from_domain(e) for e in environments])


@router.get("/api/openapi.json", include_in_schema=False)
def openapi_json() -> Response[Any]:
    return Response(200, content_types.APPLICATION_JSON, openapi_text())


@router.get("/api/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    # The resolver's own Swagger UI page with its bundled script and styles: no CDN, works offline.
    assets = files("aws_lambda_powertools.event_handler.openapi").joinpath("swagger_ui")
    script = assets.joinpath("swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    styles = assets.joinpath("swagger-ui.min.css").read_text(encoding="utf-8")
    # "</" inside the inline script would end it early.
    spec = openapi_text().replace("</", "<\\/")
    page = generate_swagger_html(spec, script, styles, "", None, persist_authorization=False)
    return Response(200, "text/html", page)


@cache
def openapi_text() -> str:
    # The whole API's document, although this function serves only the meta routes.
    from sandbox_gateway.api import app  # noqa: PLC0415 - app imports this module

    return app.openapi_text()
