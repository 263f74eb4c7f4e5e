"""/api/e2b/files: list, read, write and delete files in a session's sandbox."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

import base64
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from sandbox_gateway import wiring
from sandbox_gateway.api.context import current_request
from sandbox_gateway.api.openapi import SANDBOX_CALL, IdempotencyKey, responses
from sandbox_gateway.api.resolver import json_response
from sandbox_gateway.config import get_settings
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import (
    FileContentResponse,
    FileEntryResponse,
    FileListResponse,
    FileWrittenResponse,
    WriteFileRequest,
)
from sandbox_gateway.observability import logger, metrics, tracer
from sandbox_gateway.services.files import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT

router = Router()
SCOPE = "files"  # what a key needs for these routes
TAGS = ["files"]
OCTET_STREAM = "application/octet-stream"
FILE_ERRORS = (
    errors.InvalidRequest,
    errors.InvalidFilePath,
    errors.InvalidFileOperation,
    errors.FileNotFound,
    *SANDBOX_CALL,
)
# `{file_path+}` in API Gateway: the rest of the URL path, slashes included (api/resolver.py).
FilePath = Annotated[
    str, Path(description="absolute, or relative to the workspace; may contain slashes", max_length=4096)
]


@router.get(
    "/api/e2b/files/<session_id>",
    summary="List a directory, sorted by name, in pages",
    tags=TAGS,
    responses=responses(HTTPStatus.OK, "A page of entries", errors.InvalidPageToken, *FILE_ERRORS),
)
def list_files(
    session_id: str,
    directory: Annotated[str | None, Query(max_length=4096, description="default: the workspace")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
    next_token: Annotated[str | None, Query(max_length=8192)] = None,
) -> FileListResponse:
    logger.append_keys(session_id=session_id)
    directory = directory or get_settings().workspace_root
    page = wiring.file_service().list(
        current_request().tenant_for(SCOPE), session_id, directory, limit, next_token
    )
    return FileListResponse(
        session_id=session_id,
        directory=page.directory,
        entries=[FileEntryResponse.from_domain(e) for e in page.entries],
        next_token=page.next_token,
    )


@router.get(
    "/api/e2b/files/<session_id>/<file_path>",
    summary="Read a file: base64 in JSON, or raw bytes with Accept: application/octet-stream",
    tags=TAGS,
    responses=responses(
        HTTPStatus.OK,
        "The file's content",
        errors.PayloadTooLarge,
        *FILE_ERRORS,
        content={
            "application/json": {"model": FileContentResponse},
            OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}},
        },
    ),
)
@tracer.capture_method(capture_response=False)  # responses carry file content
def read_file(session_id: str, file_path: FilePath) -> Response[Any]:
    logger.append_keys(session_id=session_id)
    path, data = wiring.file_service().read(
        current_request().tenant_for(SCOPE), session_id, _decoded(file_path)
    )
    metrics.add_metric(name="FilesRead", unit=MetricUnit.Count, value=1)
    if OCTET_STREAM in (router.current_event.headers.get("accept") or ""):
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


@router.post(
    "/api/e2b/files",
    status_code=HTTPStatus.CREATED,
    summary="Write a file (content in base64), creating its directories",
    tags=TAGS,
    responses=responses(
        HTTPStatus.CREATED,
        "Written (or the first answer to this Idempotency-Key)",
        errors.InvalidContent,
        errors.QuotaExceeded,
        errors.IdempotencyKeyInUse,
        errors.IdempotencyKeyReused,
        *FILE_ERRORS,
        body=True,
    ),
)
def write_file(
    request: WriteFileRequest, idempotency_key: IdempotencyKey = None
) -> Response[FileWrittenResponse]:
    logger.append_keys(session_id=request.session_id)
    tenant = current_request().tenant_for(SCOPE)

    def write() -> dict[str, Any]:
        entry = wiring.file_service().write(tenant, request.session_id, request.file_path, request.content)
        metrics.add_metric(name="FilesWritten", unit=MetricUnit.Count, value=1)
        return FileWrittenResponse(
            session_id=request.session_id, path=entry.path, size=entry.size or 0
        ).model_dump()

    if idempotency_key is None:
        body = write()
    else:
        # The body's content is part of the key's fingerprint: another content is a 422, not a replay.
        payload = request.model_dump(mode="json")
        body = wiring.idempotent("write-file").run(
            tenant, idempotency_key, payload, write, router.lambda_context
        )
    return json_response(HTTPStatus.CREATED, FileWrittenResponse.model_validate(body))


@router.delete(
    "/api/e2b/files/<session_id>/<file_path>",
    status_code=HTTPStatus.NO_CONTENT,
    summary="Delete a file or an empty directory",
    tags=TAGS,
    responses=responses(HTTPStatus.NO_CONTENT, "Deleted", *FILE_ERRORS),
)
def delete_file(session_id: str, file_path: FilePath) -> Response[None]:
    logger.append_keys(session_id=session_id)
    wiring.file_service().delete(current_request().tenant_for(SCOPE), session_id, _decoded(file_path))
    return Response(HTTPStatus.NO_CONTENT)


def _decoded(file_path: str) -> str:
    # Powertools matches the raw (percent-encoded) URL path; API Gateway's own path parameter is
    # the decoded one, so prefer it, and decode the matched text where there is none.
    return (router.current_event.get("pathParameters") or {}).get("file_path") or unquote(file_path)
