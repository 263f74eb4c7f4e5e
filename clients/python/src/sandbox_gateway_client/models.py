"""The gateway's response bodies as typed models.

Each mirrors one component of the gateway's OpenAPI spec (`openapi.json`); a test compares their
fields with the spec so they cannot drift. Fields a newer server adds are ignored, not errors.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SessionInfo(_Model):
    """A session as of the answer that carried it (`SessionResponse`)."""

    session_id: str
    status: str = Field(description="creating | active | closed | expired | failed")
    agent: str
    environment: str
    provider: str
    created_at: str
    expires_at: str
    updated_at: str
    closed_at: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, str]

    @property
    def ended(self) -> bool:
        return self.status in {"closed", "expired", "failed"}


class SessionList(_Model):
    sessions: list[SessionInfo]
    next_token: str | None = None


class Environment(_Model):
    name: str
    provider: str
    default_language: str
    languages: list[str]
    description: str
    allow_internet_access: bool


class EnvironmentList(_Model):
    environments: list[Environment]


class ExecutionError(_Model):
    """What the user's code raised: exception name, its value and the formatted traceback."""

    name: str
    value: str
    traceback: str


class Execution(_Model):
    """The answer to one `run`: code that raised or timed out is an answer too, not an exception."""

    session_id: str
    language: str
    status: str = Field(description="ok | error | timeout | oom")
    stdout: str
    stderr: str
    results: list[dict[str, Any]] = Field(description="rich outputs: text, html, png (base64), …")
    error: ExecutionError | None = None
    execution_count: int | None = None
    truncated: bool = False
    duration_ms: float
    sandbox_duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.error is None


class FileEntry(_Model):
    name: str
    path: str
    type: str = Field(description="file | directory | symlink | other")
    size: int | None = None
    modified_at: str | None = None


class FileList(_Model):
    session_id: str
    directory: str
    entries: list[FileEntry]
    next_token: str | None = None


class FileContent(_Model):
    session_id: str
    path: str
    size: int
    encoding: str = "base64"
    content: str


class WrittenFile(_Model):
    session_id: str
    path: str
    size: int


class Quotas(_Model):
    """What the caller's tenant may use: its own overrides over the deployment's defaults."""

    max_active_sessions: int
    max_session_seconds: int
    max_execution_seconds: int
    max_code_bytes: int
    max_file_bytes: int


class UsageDay(_Model):
    """One UTC day's counters; `sandbox_seconds` is the lifetime of the sessions that ended that day."""

    day: str = Field(description="YYYY-MM-DD, UTC")
    sessions_created: int
    executions: int
    sandbox_seconds: int
    bytes_uploaded: int
    bytes_downloaded: int


class Usage(_Model):
    """The caller's tenant (`UsageResponse`): live sessions now, quotas, and days with usage, oldest first."""

    tenant_id: str
    active_sessions: int
    quotas: Quotas
    days: list[UsageDay]


class ErrorProblem(_Model):
    """One validation problem: the field and what is wrong with it."""

    field: str
    message: str


class ErrorInfo(_Model):
    code: str
    message: str
    request_id: str | None = None
    details: list[ErrorProblem] | None = None


class ErrorBody(_Model):
    """Every error answer's body: `{"error": {"code", "message", "request_id"?, "details"?}}`."""

    error: ErrorInfo
