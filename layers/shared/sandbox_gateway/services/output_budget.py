"""Keep an execution's output inside the response budget.

Lambda refuses responses over 6 MB and API Gateway turns that into a bare 502, so output is cut
here, on purpose and visibly (`truncated: true`), long before that cliff.
"""

from __future__ import annotations

import json
from dataclasses import replace

from sandbox_gateway.models.execution import ExecutionErrorInfo, ExecutionOutcome, RichResult

ENVELOPE_RESERVE_BYTES = 16_384  # ids, timings, field names
MAX_TRACEBACK_CHARS = 65_536
TRUNCATION_MARK = "\n[output truncated]\n"


def fit_outcome(outcome: ExecutionOutcome, max_response_bytes: int) -> ExecutionOutcome:
    budget = max_response_bytes - ENVELOPE_RESERVE_BYTES
    truncated = outcome.truncated

    error = outcome.error
    if error is not None and len(error.traceback) > MAX_TRACEBACK_CHARS:
        error = ExecutionErrorInfo(error.name, error.value[:4096], _cut(error.traceback, MAX_TRACEBACK_CHARS))
        truncated = True
    if error is not None:
        budget -= _json_size(error.traceback) + _json_size(error.value)

    # Streams get a quarter of the budget each; rich results share what is left.
    stdout, cut_out = _fit_text(outcome.stdout, budget // 4)
    stderr, cut_err = _fit_text(outcome.stderr, budget // 4)
    truncated = truncated or cut_out or cut_err
    budget -= _json_size(stdout) + _json_size(stderr)

    kept: list[RichResult] = []
    for result in outcome.results:
        size = _json_size(result.formats)
        if size > budget:
            truncated = True
            continue
        kept.append(result)
        budget -= size

    return replace(
        outcome, stdout=stdout, stderr=stderr, results=tuple(kept), error=error, truncated=truncated
    )


def _fit_text(text: str, max_bytes: int) -> tuple[str, bool]:
    if _json_size(text) <= max_bytes:
        return text, False
    # JSON escaping can grow a character to 6 bytes (\u0000); start from a safe guess, then shrink.
    keep = max(0, max_bytes // 6)
    while keep > 0 and _json_size(text[:keep]) < max_bytes // 2:
        keep *= 2
    while keep > 0 and _json_size(text[:keep]) > max_bytes - len(TRUNCATION_MARK):
        keep = keep * 3 // 4
    return _cut(text, keep), True


def _cut(text: str, keep: int) -> str:
    return text[:keep] + TRUNCATION_MARK


def _json_size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass"))
