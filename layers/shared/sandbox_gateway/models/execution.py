"""What a provider gets to run and what comes back, in provider-neutral shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sandbox_gateway.models.environment import Language


class ExecutionStatus(StrEnum):
    OK = "ok"  # the code ran to the end
    ERROR = "error"  # the code raised; see `error`
    TIMEOUT = "timeout"  # the code was still running when its time ran out
    OOM = "oom"  # the code ran out of memory (Docker provider)


@dataclass(frozen=True)
class CodeRun:
    code: str
    language: Language
    timeout_seconds: int
    envs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionErrorInfo:
    name: str
    value: str
    traceback: str


@dataclass(frozen=True)
class RichResult:
    """One display output: every representation the kernel gave (text, html, png as base64, …)."""

    formats: dict[str, object]
    is_main_result: bool = False

    def to_payload(self) -> dict[str, object]:
        """As the API returns it: the representations, plus which ones there are."""
        return {"is_main_result": self.is_main_result, "formats": sorted(self.formats), **self.formats}


@dataclass(frozen=True)
class ExecutionOutcome:
    status: ExecutionStatus
    stdout: str = ""
    stderr: str = ""
    results: tuple[RichResult, ...] = ()
    error: ExecutionErrorInfo | None = None
    execution_count: int | None = None
    truncated: bool = False
    sandbox_duration_ms: float = 0.0
