"""The code interpreter's execution record, turned into the provider-neutral outcome.

E2B's SDK builds an `Execution` from the server's NDJSON stream; the Docker sandbox's agent
emits the same NDJSON, parsed by the same SDK function, so both providers return one shape.
"""

from __future__ import annotations

from collections.abc import Iterable

from e2b_code_interpreter.charts import Chart
from e2b_code_interpreter.models import Execution, Result, parse_output

from sandbox_gateway.models.execution import ExecutionErrorInfo, ExecutionOutcome, ExecutionStatus, RichResult

RESULT_FORMATS = (
    "text",
    "html",
    "markdown",
    "svg",
    "png",
    "jpeg",
    "pdf",
    "latex",
    "json",
    "javascript",
    "data",
    "chart",
    "extra",
)


def timed_out(
    timeout_seconds: int, elapsed_ms: float, partial: ExecutionOutcome | None = None
) -> ExecutionOutcome:
    """The outcome of code that was still running when its time ran out (not an HTTP error)."""
    return ExecutionOutcome(
        status=ExecutionStatus.TIMEOUT,
        stdout=partial.stdout if partial else "",
        stderr=partial.stderr if partial else "",
        results=partial.results if partial else (),
        error=ExecutionErrorInfo(
            name="TimeoutError", value=f"execution did not finish within {timeout_seconds} s", traceback=""
        ),
        execution_count=partial.execution_count if partial else None,
        truncated=partial.truncated if partial else False,
        sandbox_duration_ms=elapsed_ms,
    )


def execution_from_ndjson(lines: Iterable[str]) -> Execution:
    """Parse code-interpreter NDJSON lines as the SDK does (unknown line types are ignored)."""
    execution = Execution()
    for line in lines:
        if line.strip():
            parse_output(execution, line)
    return execution


def _formats(result: Result) -> dict[str, object]:
    """The result's representations as JSON values; the SDK turns a chart into an object."""
    formats: dict[str, object] = {}
    for name in RESULT_FORMATS:
        value = getattr(result, name, None)
        if value in (None, {}, ""):
            continue
        formats[name] = value.to_dict() if isinstance(value, Chart) else value
    return formats


def outcome_from_execution(
    execution: Execution, elapsed_ms: float, status: ExecutionStatus | None = None, truncated: bool = False
) -> ExecutionOutcome:
    error = execution.error
    return ExecutionOutcome(
        status=status or (ExecutionStatus.ERROR if error else ExecutionStatus.OK),
        stdout="".join(execution.logs.stdout),
        stderr="".join(execution.logs.stderr),
        results=tuple(
            RichResult(formats=_formats(result), is_main_result=bool(result.is_main_result))
            for result in execution.results
        ),
        error=ExecutionErrorInfo(error.name, error.value, error.traceback) if error else None,
        execution_count=execution.execution_count,
        truncated=truncated,
        sandbox_duration_ms=elapsed_ms,
    )
