"""Session routes: create, read, list, keep alive, close; and the environment catalogue."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import wiring
from sandbox_gateway.api.resolver import build_resolver, current_tenant, json_response
from sandbox_gateway.models.api import (
    CreateSessionRequest,
    EnvironmentListResponse,
    EnvironmentResponse,
    KeepAliveRequest,
    SessionListResponse,
    SessionResponse,
)
from sandbox_gateway.observability import logger, metrics, tracer

app = build_resolver()


@app.post("/api/sessions")
def create_session(request: CreateSessionRequest) -> Response[SessionResponse]:
    tenant = current_tenant(app)

    def create() -> dict:
        session = wiring.session_service().create(tenant, **request.model_dump())
        logger.append_keys(session_id=session.session_id)
        metrics.add_metric(name="SessionsCreated", unit=MetricUnit.Count, value=1)
        return SessionResponse.from_domain(session).model_dump(mode="json")

    # A retry with the same Idempotency-Key gets the first answer, not a second sandbox.
    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        body = create()
    else:
        payload = request.model_dump(mode="json")
        body = wiring.idempotent_create().run(tenant, key, payload, create, app.lambda_context)
    return json_response(HTTPStatus.CREATED, SessionResponse.model_validate(body))


@app.get("/api/sessions")
def list_sessions(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    next_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> SessionListResponse:
    page = wiring.session_service().list(current_tenant(app), limit, next_token)
    return SessionListResponse(
        sessions=[SessionResponse.from_domain(s) for s in page.sessions], next_token=page.next_token
    )


@app.get("/api/sessions/<session_id>")
def get_session(session_id: str) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    return SessionResponse.from_domain(wiring.session_service().get(current_tenant(app), session_id))


@app.post("/api/sessions/<session_id>/keepalive")
def keep_alive(session_id: str, request: KeepAliveRequest) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    session = wiring.session_service().keep_alive(current_tenant(app), session_id, request.timeout_seconds)
    return SessionResponse.from_domain(session)


@app.delete("/api/sessions/<session_id>")
def close_session(session_id: str) -> SessionResponse:
    logger.append_keys(session_id=session_id)
    session = wiring.session_service().close(current_tenant(app), session_id)
    metrics.add_metric(name="SessionsClosed", unit=MetricUnit.Count, value=1)
    return SessionResponse.from_domain(session)


@app.get("/api/environments")
def list_environments() -> EnvironmentListResponse:
    environments = wiring.catalogue().available()
    return EnvironmentListResponse(environments=[EnvironmentResponse.from_domain(e) for e in environments])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
