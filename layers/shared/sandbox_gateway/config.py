"""Settings read from the environment once per cold start; nothing else reads os.environ."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from sandbox_gateway.models.environment import Environment

WORKER_MARGIN_SECONDS = 60


class Settings(BaseModel):
    """Everything the service can be configured with (see README, "Configuration")."""

    table_name: str = "sandbox-gateway-sessions"
    dynamodb_endpoint_url: str | None = None

    e2b_api_key: str | None = Field(default=None, repr=False)
    e2b_api_key_secret_id: str | None = None
    e2b_api_url: str | None = None  # the local E2B-compatible host; unset = E2B's cloud
    e2b_sandbox_url: str | None = None
    e2b_request_timeout_seconds: float = Field(default=10.0, gt=0, le=25)
    # Output one E2B execution may collect (JSON-escaped bytes) before its cell is stopped and the
    # answer says `truncated`; the response keeps what fits MAX_RESPONSE_BYTES. Bounded above as it
    # is held in the function's memory.
    e2b_output_limit_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    session_timeout_default_seconds: int = Field(default=900, ge=60)
    session_timeout_max_seconds: int = Field(default=3600, ge=60, le=86_400)
    execution_timeout_default_seconds: int = Field(default=20, ge=1)
    # API Gateway cuts every request at 30 s: an execution must finish (or be reported as
    # timed out) well before that, including the round trips around it.
    execution_timeout_max_seconds: int = Field(default=25, ge=1, le=27)
    execution_lease_seconds: int = Field(default=30, ge=5)

    max_response_bytes: int = Field(default=5_000_000, ge=10_000, le=5_800_000)
    max_file_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=4_300_000)
    max_code_bytes: int = Field(default=1_000_000, ge=1024, le=4_000_000)

    allowed_roots: tuple[str, ...] = ("/workspace", "/home/user", "/tmp")  # noqa: S108 - sandbox paths
    workspace_root: str = "/workspace"

    local_mode: bool = False
    # Docker provider (local development only); environments may lower or raise cpu/memory.
    docker_host: str | None = None  # unset: DOCKER_HOST or the local socket, as docker-py decides
    docker_owner: str = "default"  # labels a stack's containers so it can remove just its own
    docker_memory_mb: int = Field(default=512, ge=64)
    docker_cpus: float = Field(default=1.0, gt=0)
    docker_pids_limit: int = Field(default=256, ge=16)
    docker_workspace_mb: int = Field(default=256, ge=1)
    docker_output_limit_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Per-tenant quota defaults (a tenant's own overrides are stored with it; see README "Quotas").
    quota_max_active_sessions: int = Field(default=10, ge=1)
    # The reaper (scheduled function; a thread in the local stack): sessions per run.
    reaper_batch_size: int = Field(default=200, ge=1, le=1000)
    custom_environments: tuple[Environment, ...] = ()

    # The KMS key that seals each E2B sandbox's access token in its session, so a warm execute in a
    # new container reaches the sandbox without E2B's control plane. Unset: connect per container.
    sandbox_access_key_id: str | None = None

    # The warm pool (docs/decisions/0010-warm-pool.md): sandboxes booted ahead per environment,
    # "e2b-python=2,e2b-node=1"; empty: none (every create boots its sandbox). A pooled sandbox
    # unclaimed for WARM_POOL_MAX_AGE_SECONDS is retired.
    warm_pool: dict[str, int] = Field(default_factory=dict)
    warm_pool_max_age_seconds: int = Field(default=900, ge=60, le=3600)

    # Async and event-triggered executions (docs/decisions/0007-async-executions.md). Unset
    # queue, bus or bucket: that part is off (mode "async" answers 503 async_unavailable).
    aws_endpoint_url: str | None = None  # SQS, EventBridge and S3 (the local stack's moto)
    execution_queue_url: str | None = None
    event_bus_name: str | None = None
    results_bucket: str | None = None
    # The worker's own timeout bounds an async execution (template.yaml: WorkerTimeoutSeconds),
    # less WORKER_MARGIN_SECONDS for the sandbox's start, the result's upload and callbacks.
    worker_timeout_seconds: int = Field(default=720, ge=120, le=900)
    # An async result may be this large (JSON bytes; stdout and stderr get a quarter each); above
    # INLINE_RESULT_MAX_BYTES it lives in S3.
    async_result_max_bytes: int = Field(default=64 * 1024 * 1024, ge=10_000, le=256 * 1024 * 1024)
    inline_result_max_bytes: int = Field(default=256 * 1024, ge=1024, le=350 * 1024)
    result_url_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)  # presigned URLs
    execution_retention_seconds: int = Field(default=7 * 24 * 3600, ge=3600)
    # Callbacks: loopback targets are allowed only in the local stack (never private ranges).
    callback_allow_loopback: bool = False
    callback_attempts: int = Field(default=3, ge=1, le=10)
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=30)

    @property
    def async_execution_timeout_max_seconds(self) -> int:
        return self.worker_timeout_seconds - WORKER_MARGIN_SECONDS

    @field_validator("warm_pool", mode="before")
    @classmethod
    def _parse_pool_sizes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        sizes: dict[str, int] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, equals, size = part.partition("=")
            if not equals or not name.strip() or not size.strip().isdigit():
                raise ValueError(f"WARM_POOL entries are <environment>=<size>, not {part!r}")
            sizes[name.strip()] = int(size)
        return sizes

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if self.session_timeout_default_seconds > self.session_timeout_max_seconds:
            raise ValueError("SESSION_TIMEOUT_DEFAULT_SECONDS exceeds SESSION_TIMEOUT_MAX_SECONDS")
        if self.execution_timeout_default_seconds > self.execution_timeout_max_seconds:
            raise ValueError("EXECUTION_TIMEOUT_DEFAULT_SECONDS exceeds EXECUTION_TIMEOUT_MAX_SECONDS")
        if self.workspace_root not in self.allowed_roots:
            raise ValueError("WORKSPACE_ROOT must be one of ALLOWED_ROOTS")
        return self

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        raw: dict[str, object] = {}
        for name in cls.model_fields:
            value = env.get(name.upper())
            if value is not None and value != "":
                raw[name] = value
        # `sam local` sets AWS_SAM_LOCAL=true inside its function containers.
        if env.get("AWS_SAM_LOCAL", "").lower() == "true":
            raw["local_mode"] = True
        if "custom_environments" in raw:
            raw["custom_environments"] = _parse_json_list(str(raw["custom_environments"]))
        return cls.model_validate(raw)


def _parse_json_list(text: str) -> list[object]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CUSTOM_ENVIRONMENTS is not valid JSON: {exc.msg}") from exc
    if not isinstance(parsed, list):
        raise ValueError("CUSTOM_ENVIRONMENTS must be a JSON list of environment objects")
    return parsed


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environ()


__all__ = ["Settings", "ValidationError", "get_settings"]
