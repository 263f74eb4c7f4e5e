"""Keep an execution's output inside the response budget.

Lambda refuses responses over 6 MB and API Gateway turns that into a bare 502, so output is cut
here, on purpose and visibly (`truncated: true`), long before that cliff. Sizes are measured as
the bytes a value costs in Lambda's response payload: JSON-encoded once by the resolver (ASCII
escapes for non-ASCII text) and again as the `body` string of the payload.
"""

from __future__ import annotations

import json
from dataclasses import replace

from sandbox_gateway.models.execution import ExecutionErrorInfo, ExecutionOutcome

ENVELOPE_RESERVE_BYTES = 16_384  # ids, timings, field names
MAX_ERROR_NAME_CHARS = 256
MAX_ERROR_VALUE_CHARS = 16_384
MAX_TRACEBACK_CHARS = 65_536
TRUNCATION_MARK = "\n[output truncated]\n"


def fit_outcome(outcome: ExecutionOutcome, max_response_bytes: int) -> ExecutionOutcome:
    budget = max_response_bytes - ENVELOPE_RESERVE_BYTES
    truncated = outcome.truncated

    error = outcome.error
    if error is not None:
        capped = ExecutionErrorInfo(
            name=_cap(error.name, MAX_ERROR_NAME_CHARS),
            value=_cap(error.value, MAX_ERROR_VALUE_CHARS),
            traceback=_cap(error.traceback, MAX_TRACEBACK_CHARS),
        )
        truncated = truncated or capped != error
        error = capped
        budget -= wire_size([error.name, error.value, error.traceback])

    # Streams get a quarter of the budget each; rich results share what is left.
    stdout, cut_out = _fit_text(outcome.stdout, budget // 4)
    stderr, cut_err = _fit_text(outcome.stderr, budget // 4)
    truncated = truncated or cut_out or cut_err
    budget -= wire_size(stdout) + wire_size(stderr)

    kept = []
    for result in outcome.results:
        size = wire_size(result.to_payload())
        if size > budget:
            truncated = True
            continue
        kept.append(result)
        budget -= size

    return replace(
        outcome, stdout=stdout, stderr=stderr, results=tuple(kept), error=error, truncated=truncated
    )


def wire_size(value: object) -> int:
    """Bytes `value` takes inside the Lambda response payload (JSON within a JSON string)."""
    return len(json.dumps(json.dumps(value)))


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATION_MARK


def _fit_text(text: str, max_bytes: int) -> tuple[str, bool]:
    if wire_size(text) <= max_bytes:
        return text, False
    limit = max(0, max_bytes - wire_size(TRUNCATION_MARK))
    # Escaping costs 1 to 12 bytes a character: binary-search the longest prefix that fits.
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if wire_size(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + TRUNCATION_MARK, True
