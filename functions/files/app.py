"""File routes: list, read, write and delete files in a session's sandbox."""

import base64
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sandbox_gateway import wiring
from sandbox_gateway.api.resolver import build_resolver, current_tenant, json_response
from sandbox_gateway.models.api import (
    FileContentResponse,
    FileEntryResponse,
    FileListResponse,
    FileWrittenResponse,
    WriteFileRequest,
)
from sandbox_gateway.observability import logger, metrics, tracer
from sandbox_gateway.services.files import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT

app = build_resolver()
# The file path may contain slashes: API Gateway's greedy `{file_path+}` hands it over decoded
# in pathParameters; Powertools' `<param>` stops at "/", so the route ends in a bare pattern.
OCTET_STREAM = "application/octet-stream"
FILE_ROUTE = "/api/e2b/files/<session_id>/.+"


def requested_file_path() -> str:
    path_parameters = app.current_event.path_parameters or {}
    return path_parameters.get("file_path") or ""


@app.get("/api/e2b/files/<session_id>")
def list_files(
    session_id: str,
    directory: Annotated[str, Query(max_length=4096)] = "/workspace",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
    next_token: Annotated[str | None, Query(max_length=8192)] = None,
) -> FileListResponse:
    logger.append_keys(session_id=session_id)
    page = wiring.file_service().list(current_tenant(app), session_id, directory, limit, next_token)
    return FileListResponse(
        session_id=session_id,
        directory=page.directory,
        entries=[FileEntryResponse.from_domain(e) for e in page.entries],
        next_token=page.next_token,
    )


@app.get(FILE_ROUTE)
@tracer.capture_method(capture_response=False)  # responses carry file content
def read_file(session_id: str) -> Response[Any]:
    logger.append_keys(session_id=session_id)
    path, data = wiring.file_service().read(current_tenant(app), session_id, requested_file_path())
    metrics.add_metric(name="FilesRead", unit=MetricUnit.Count, value=1)
    if OCTET_STREAM in (app.current_event.headers.get("accept") or ""):
        return raw_bytes_response(data)
    body = FileContentResponse(
        session_id=session_id, path=path, size=len(data), content=base64.b64encode(data).decode()
    )
    return json_response(HTTPStatus.OK, body)


def raw_bytes_response(data: bytes) -> Response[Any]:
    # API Gateway wants binary bodies base64-encoded with isBase64Encoded set; Powertools'
    # response validation would turn a bytes body into text first, so encode it here.
    response: Response[Any] = Response(HTTPStatus.OK, OCTET_STREAM, base64.b64encode(data).decode())
    response.base64_encoded = True
    return response


@app.post("/api/e2b/files")
def write_file(request: WriteFileRequest) -> Response[FileWrittenResponse]:
    logger.append_keys(session_id=request.session_id)
    entry = wiring.file_service().write(
        current_tenant(app), request.session_id, request.file_path, request.content
    )
    metrics.add_metric(name="FilesWritten", unit=MetricUnit.Count, value=1)
    written = FileWrittenResponse(session_id=request.session_id, path=entry.path, size=entry.size or 0)
    return json_response(HTTPStatus.CREATED, written)


@app.delete(FILE_ROUTE)
def delete_file(session_id: str) -> Response[None]:
    logger.append_keys(session_id=session_id)
    wiring.file_service().delete(current_tenant(app), session_id, requested_file_path())
    return Response(HTTPStatus.NO_CONTENT)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
