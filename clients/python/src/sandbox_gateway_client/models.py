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
    execution_id: str | None = Field(default=None, description="`Gateway.get_execution` reads it again")

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.error is None


TERMINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out"})


class QueuedExecution(_Model):
    """The answer to `submit` (`ExecutionQueuedResponse`, a 202): the execution runs later;
    `Gateway.wait(execution_id)` or `Gateway.get_execution` follows it."""

    execution_id: str
    status: str = Field(description="queued (or the state reached, on an Idempotency-Key replay)")
    session_id: str | None = None
    environment: str | None = None
    href: str = Field(description="the execution's URL path, as in the Location header")


class ExecutionFailure(_Model):
    """Why the gateway could not run an execution: one of the API's error codes and its message."""

    code: str
    message: str


class ExecutionRecord(_Model):
    """An execution as recorded (`ExecutionResponse`): its status and, once finished, its result.

    `result` is the body a synchronous execute answers (see `execution`), or None while it runs,
    when the gateway could not run it (`failure`), in a listing, or when it is large: then it is
    at `result_url`, a presigned URL until `result_url_expires_at` (`Gateway.fetch_result`)."""

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
    failure: ExecutionFailure | None = None
    result: dict[str, Any] | None = None
    result_url: str | None = None
    result_url_expires_at: str | None = None
    result_bytes: int | None = None
    callback: dict[str, Any] | None = Field(default=None, description="delivery: status, attempts")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def execution(self) -> Execution | None:
        """The result as an `Execution` (what `Session.run` returns), when this record carries it."""
        return None if self.result is None else Execution.model_validate(self.result)


class ExecutionPage(_Model):
    """One page of a session's executions, newest first, without their results."""

    executions: list[ExecutionRecord]
    next_token: str | None = None


class CallbackSecret(_Model):
    """The key that signs this tenant's callbacks: give it to `verify_signature` on the receiver."""

    secret: str = Field(repr=False)


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
