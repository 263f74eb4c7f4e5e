"""Request and response models of the HTTP API (they also drive validation and the OpenAPI spec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from sandbox_gateway.models.environment import Environment
from sandbox_gateway.models.execution import ExecutionOutcome
from sandbox_gateway.models.files import FileEntry
from sandbox_gateway.models.session import Session

SessionId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
MAX_METADATA_ENTRIES = 16
MAX_ENVS = 32


class _Request(BaseModel):
    # A misspelt field is an error, not silently ignored; a wrong type is an error, not coerced
    # ("10" or true is no number). Strict holds for validate_python, which Powertools calls.
    model_config = ConfigDict(extra="forbid", strict=True)


def _bounded_map(value: dict[str, str], limit: int, what: str) -> dict[str, str]:
    if len(value) > limit:
        raise ValueError(f"{what} may hold at most {limit} entries")
    return value


class CreateSessionRequest(_Request):
    agent: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        "code_executor"
    )
    environment: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "e2b-python"
    provider: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    timeout_seconds: int | None = Field(default=None, ge=60, le=86_400, description="session lifetime")
    metadata: dict[MetadataKey, Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=dict
    )
    # repr=False: values are often secrets, and a request model's repr reaches debug logs.
    envs: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, repr=False
    )

    @field_validator("metadata")
    @classmethod
    def _few_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_map(value, MAX_METADATA_ENTRIES, "metadata")

    @field_validator("envs")
    @classmethod
    def _few_envs(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_map(value, MAX_ENVS, "envs")


class KeepAliveRequest(_Request):
    timeout_seconds: int | None = Field(default=None, ge=60, le=86_400, description="new lifetime from now")


class ExecuteRequest(_Request):
    session_id: SessionId | None = Field(default=None, description="the session to run in")
    environment: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description='mode "async" only, instead of session_id: run in a one-off session of this '
        "environment, closed when the execution ends",
    )
    code: str
    language: Annotated[str, StringConstraints(max_length=32)] | None = None
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=900, description="at most 25 s for sync; async: the worker's limit"
    )
    mode: Literal["sync", "async"] = Field(
        default="sync", description='"async": answer 202 at once; fetch GET /api/executions/{id}'
    )
    callback_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        default=None, description='mode "async" only: an https URL the signed result is POSTed to'
    )
    # repr=False: values are often secrets, and a request model's repr reaches debug logs.
    envs: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, repr=False
    )

    @field_validator("envs")
    @classmethod
    def _few_envs(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_map(value, MAX_ENVS, "envs")

    @model_validator(mode="after")
    def _one_target(self) -> ExecuteRequest:
        if (self.session_id is None) == (self.environment is None):
            raise ValueError("give exactly one of session_id and environment")
        if self.mode == "sync" and self.environment is not None:
            raise ValueError('environment (a one-off session) needs "mode": "async"; give a session_id')
        if self.mode == "sync" and self.callback_url is not None:
            raise ValueError('callback_url needs "mode": "async"')
        return self


class WriteFileRequest(_Request):
    session_id: SessionId
    file_path: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    content: str = Field(
        description="file content, standard base64 with padding",
        repr=False,  # file contents stay out of debug logs
        json_schema_extra={"contentEncoding": "base64"},
    )


def _iso(epoch_seconds: int | None) -> str | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat().replace("+00:00", "Z")


class SessionResponse(BaseModel):
    session_id: str
    status: str
    agent: str
    environment: str
    provider: str
    created_at: str
    expires_at: str
    updated_at: str
    closed_at: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, str]

    @classmethod
    def from_domain(cls, session: Session) -> SessionResponse:
        return cls(
            session_id=session.session_id,
            status=session.status.value,
            agent=session.agent,
            environment=session.environment,
            provider=session.provider.value,
            created_at=_iso(session.created_at) or "",
            expires_at=_iso(session.expires_at) or "",
            updated_at=_iso(session.updated_at) or "",
            closed_at=_iso(session.closed_at),
            failure_reason=session.failure_reason,
            metadata=session.metadata,
        )


class SessionListResponse(BaseModel):
    sessions: list[SessionResponse]
    next_token: str | None = None


class EnvironmentResponse(BaseModel):
    name: str
    provider: str
    default_language: str
    languages: list[str]
    description: str
    allow_internet_access: bool

    @classmethod
    def from_domain(cls, env: Environment) -> EnvironmentResponse:
        return cls(
            name=env.name,
            provider=env.provider.value,
            default_language=env.default_language.value,
            languages=[lang.value for lang in env.languages],
            description=env.description,
            allow_internet_access=env.allow_internet_access,
        )


class EnvironmentListResponse(BaseModel):
    environments: list[EnvironmentResponse]


class ExecutionErrorResponse(BaseModel):
    name: str
    value: str
    traceback: str


class ExecuteResponse(BaseModel):
    session_id: str
    language: str
    status: str = Field(description="ok | error | timeout | oom")
    stdout: str
    stderr: str
    results: list[dict[str, Any]] = Field(description="rich outputs: text, html, png (base64), …")
    error: ExecutionErrorResponse | None = None
    execution_count: int | None = None
    truncated: bool = False
    duration_ms: float
    sandbox_duration_ms: float
    execution_id: str | None = Field(default=None, description="GET /api/executions/{id} reads it again")

    @classmethod
    def from_domain(
        cls, session_id: str, language: str, outcome: ExecutionOutcome, duration_ms: float
    ) -> ExecuteResponse:
        return cls(
            session_id=session_id,
            language=language,
            status=outcome.status.value,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            results=[result.to_payload() for result in outcome.results],
            error=ExecutionErrorResponse(**vars(outcome.error)) if outcome.error else None,
            execution_count=outcome.execution_count,
            truncated=outcome.truncated,
            duration_ms=round(duration_ms, 2),
            sandbox_duration_ms=round(outcome.sandbox_duration_ms, 2),
        )


class FileEntryResponse(BaseModel):
    name: str
    path: str
    type: str
    size: int | None = None
    modified_at: str | None = None

    @classmethod
    def from_domain(cls, entry: FileEntry) -> FileEntryResponse:
        return cls(
            name=entry.name,
            path=entry.path,
            type=entry.type.value,
            size=entry.size,
            modified_at=entry.modified_at,
        )


class FileListResponse(BaseModel):
    session_id: str
    directory: str
    entries: list[FileEntryResponse] = Field(description="sorted by name")
    next_token: str | None = Field(default=None, description="pass back to get the next page")


class FileContentResponse(BaseModel):
    session_id: str
    path: str
    size: int
    encoding: str = "base64"
    content: str = Field(json_schema_extra={"contentEncoding": "base64"})


class FileWrittenResponse(BaseModel):
    session_id: str
    path: str
    size: int


class ErrorDetailResponse(BaseModel):
    field: str
    message: str


class ErrorInfoResponse(BaseModel):
    code: str = Field(description="stable, machine-readable; see the README's error table")
    message: str
    request_id: str | None = Field(default=None, description="quote it when reporting a problem")
    details: list[ErrorDetailResponse] | None = Field(default=None, description="validation problems")


class ErrorResponse(BaseModel):
    error: ErrorInfoResponse


class GatewayRejectionResponse(BaseModel):
    """API Gateway's own answer when its authorizer rejects a request before any function runs:
    401 {"message": "Unauthorized"} without a key, 403 {"message": "Forbidden"} for a refused one."""

    message: str


class UsageDayResponse(BaseModel):
    day: str = Field(description="YYYY-MM-DD, UTC")
    sessions_created: int
    executions: int
    sandbox_seconds: int = Field(description="lifetime of the sessions that ended that day")
    bytes_uploaded: int
    bytes_downloaded: int


class QuotasResponse(BaseModel):
    max_active_sessions: int
    max_session_seconds: int
    max_execution_seconds: int
    max_code_bytes: int
    max_file_bytes: int


class UsageResponse(BaseModel):
    tenant_id: str
    active_sessions: int
    quotas: QuotasResponse
    days: list[UsageDayResponse] = Field(description="days with any usage, oldest first")


class ExecutionQueuedResponse(BaseModel):
    execution_id: str
    status: str = Field(description="queued (or the state it has reached, on an Idempotency-Key replay)")
    session_id: str | None = None
    environment: str | None = None
    href: str = Field(description="where to fetch the execution: /api/executions/{execution_id}")


class ExecutionFailureResponse(BaseModel):
    code: str
    message: str


class ExecutionResponse(BaseModel):
    execution_id: str
    status: str = Field(description="queued | running | succeeded | failed | timed_out")
    mode: str = Field(description="sync | async")
    source: str = Field(description="api | sqs | events")
    session_id: str | None = None
    environment: str | None = None
    language: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    failure: ExecutionFailureResponse | None = Field(
        default=None, description="why the gateway could not run it (an error code of this API)"
    )
    result: dict[str, Any] | None = Field(
        default=None, description="once finished: the body a synchronous execute answers, when small"
    )
    result_url: str | None = Field(
        default=None,
        description="a large result: a presigned URL to that body, valid until result_url_expires_at",
    )
    result_url_expires_at: str | None = None
    result_bytes: int | None = None
    callback: dict[str, Any] | None = Field(
        default=None, description="the callback's delivery: status, attempts"
    )


class ExecutionListResponse(BaseModel):
    executions: list[ExecutionResponse]
    next_token: str | None = None


class CallbackSecretResponse(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of the Sandbox-Gateway-Signature header")
