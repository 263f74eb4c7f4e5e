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


def _formats_of(result: Result) -> dict[str, object]:
    """A result's representations as plain JSON values. The SDK parses a chart into a `Chart`
    object; the API returns the chart as the server sent it (its `to_dict()`)."""
    formats: dict[str, object] = {}
    for name in RESULT_FORMATS:
        value = getattr(result, name, None)
        if isinstance(value, Chart):
            value = value.to_dict()
        if value not in (None, {}, ""):
            formats[name] = value
    return formats


def execution_from_ndjson(lines: Iterable[str]) -> Execution:
    """Parse code-interpreter NDJSON lines as the SDK does (unknown line types are ignored)."""
    execution = Execution()
    for line in lines:
        if line.strip():
            parse_output(execution, line)
    return execution


def outcome_from_execution(
    execution: Execution, elapsed_ms: float, status: ExecutionStatus | None = None, truncated: bool = False
) -> ExecutionOutcome:
    error = execution.error
    return ExecutionOutcome(
        status=status or (ExecutionStatus.ERROR if error else ExecutionStatus.OK),
        stdout="".join(execution.logs.stdout),
        stderr="".join(execution.logs.stderr),
        results=tuple(
            RichResult(formats=_formats_of(result), is_main_result=bool(result.is_main_result))
            for result in execution.results
        ),
        error=ExecutionErrorInfo(error.name, error.value, error.traceback) if error else None,
        execution_count=execution.execution_count,
        truncated=truncated,
        sandbox_duration_ms=elapsed_ms,
    )
