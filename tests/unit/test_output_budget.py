"""fit_outcome keeps an execution's output inside the response budget, visibly (truncated: true)."""

from __future__ import annotations

import json
from functools import partial

import pytest
from aws_lambda_powertools.shared.json_encoder import Encoder
from sandbox_gateway.models.api import ExecuteResponse
from sandbox_gateway.models.execution import (
    ExecutionErrorInfo,
    ExecutionOutcome,
    ExecutionStatus,
    RichResult,
)
from sandbox_gateway.services.output_budget import MAX_TRACEBACK_CHARS, TRUNCATION_MARK, fit_outcome

MB = 1_000_000
DEFAULT_MAX = 5 * MB  # Settings.max_response_bytes default
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
# What APIGatewayHttpResolver does with a JSON body (its default serializer).
powertools_dumps = partial(json.dumps, separators=(",", ":"), cls=Encoder)


def response_body(outcome: ExecutionOutcome) -> str:
    """The body the execute handler actually sends for this outcome."""
    response = ExecuteResponse.from_domain("ses_0190a1b2c3d4e5f60718293a4b5c", "python", outcome, 123.45)
    return powertools_dumps(response.model_dump(mode="json"))


def body_bytes(outcome: ExecutionOutcome) -> int:
    return len(response_body(outcome).encode("utf-8"))


def test_fit_outcome_leaves_small_outcome_untouched() -> None:
    outcome = ExecutionOutcome(
        status=ExecutionStatus.ERROR,
        stdout="hello\n",
        stderr="warning\n",
        results=(RichResult({"text": "42", "html": "<b>42</b>"}, is_main_result=True),),
        error=ExecutionErrorInfo("ValueError", "bad", "Traceback (most recent call last): ..."),
        execution_count=7,
        sandbox_duration_ms=3.5,
    )
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    assert fitted == outcome
    assert fitted.truncated is False


def test_fit_outcome_keeps_an_already_truncated_flag() -> None:
    outcome = ExecutionOutcome(status=ExecutionStatus.OK, stdout="x", truncated=True)
    assert fit_outcome(outcome, DEFAULT_MAX).truncated is True


@pytest.mark.parametrize(
    ("stream", "text"),
    [
        ("stdout", "a" * (20 * MB)),
        ("stderr", "a" * (20 * MB)),
        ("stdout", "\x00" * (5 * MB)),  # JSON escapes each to \u0000: 6 bytes
        ("stdout", "line\n" * MB),
        ("stdout", "é" * (3 * MB)),
    ],
    ids=["20MB-stdout", "20MB-stderr", "NUL-stdout", "newlines", "two-byte-chars"],
)
def test_fit_outcome_cuts_huge_stream_under_budget(stream: str, text: str) -> None:
    outcome = ExecutionOutcome(status=ExecutionStatus.OK, **{stream: text})
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    kept = getattr(fitted, stream)
    assert fitted.truncated is True
    assert kept.endswith(TRUNCATION_MARK)
    assert text.startswith(kept.removesuffix(TRUNCATION_MARK))  # a prefix, bytes unchanged
    assert len(kept) > 1000  # cut, not emptied
    assert body_bytes(fitted) < DEFAULT_MAX


def test_fit_outcome_cuts_both_streams_under_a_small_budget() -> None:
    outcome = ExecutionOutcome(status=ExecutionStatus.OK, stdout="o" * MB, stderr="\x00" * MB)
    fitted = fit_outcome(outcome, 100_000)
    assert fitted.truncated is True
    assert body_bytes(fitted) < 100_000


def test_fit_outcome_drops_results_that_do_not_fit_and_keeps_earlier_ones() -> None:
    small = RichResult({"text": "first"}, is_main_result=True)
    huge = RichResult({"png": "A" * (6 * MB), "text": "<Figure>"})
    later = RichResult({"text": "after"})
    outcome = ExecutionOutcome(status=ExecutionStatus.OK, results=(small, huge, later))
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    assert fitted.truncated is True
    assert fitted.results == (small, later)
    assert body_bytes(fitted) < DEFAULT_MAX


def test_fit_outcome_keeps_results_in_order_until_budget_runs_out() -> None:
    results = tuple(RichResult({"text": f"{i:03d}" + "x" * 300_000}) for i in range(30))
    fitted = fit_outcome(ExecutionOutcome(status=ExecutionStatus.OK, results=results), DEFAULT_MAX)
    assert fitted.truncated is True
    assert 0 < len(fitted.results) < len(results)
    assert fitted.results == results[: len(fitted.results)]
    assert body_bytes(fitted) < DEFAULT_MAX


def test_fit_outcome_cuts_huge_traceback() -> None:
    traceback = '  File "<cell>", line 1, in <module>\n' * 500_000
    outcome = ExecutionOutcome(
        status=ExecutionStatus.ERROR,
        error=ExecutionErrorInfo("RecursionError", "maximum recursion depth exceeded", traceback),
    )
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    assert fitted.truncated is True
    assert fitted.error is not None
    assert fitted.error.name == "RecursionError"
    assert fitted.error.value == "maximum recursion depth exceeded"
    assert fitted.error.traceback == traceback[:MAX_TRACEBACK_CHARS] + TRUNCATION_MARK
    assert body_bytes(fitted) < DEFAULT_MAX


def test_fit_outcome_traceback_at_limit_is_not_cut() -> None:
    error = ExecutionErrorInfo("E", "v", "t" * MAX_TRACEBACK_CHARS)
    fitted = fit_outcome(ExecutionOutcome(status=ExecutionStatus.ERROR, error=error), DEFAULT_MAX)
    assert fitted.error == error
    assert fitted.truncated is False


def test_fit_outcome_everything_huge_at_once_stays_under_budget() -> None:
    outcome = ExecutionOutcome(
        status=ExecutionStatus.ERROR,
        stdout="o" * (8 * MB),
        stderr="\x00" * (2 * MB),
        results=(RichResult({"text": "r" * (3 * MB)}), RichResult({"text": "kept?"})),
        error=ExecutionErrorInfo("E", "v" * 100_000, "t" * (2 * MB)),
    )
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    assert fitted.truncated is True
    assert body_bytes(fitted) < DEFAULT_MAX


# --- holes the budget once had (regression tests) ------------------------------------------


def test_fit_outcome_cuts_huge_error_value_with_short_traceback() -> None:
    outcome = ExecutionOutcome(
        status=ExecutionStatus.ERROR,
        error=ExecutionErrorInfo("ValueError", "v" * (8 * MB), "ValueError: <message>"),
    )
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    assert fitted.truncated is True
    assert body_bytes(fitted) < DEFAULT_MAX


def test_fit_outcome_many_small_results_stay_under_budget() -> None:
    results = tuple(RichResult({"text": "1"}) for _ in range(50_000))
    fitted = fit_outcome(ExecutionOutcome(status=ExecutionStatus.OK, results=results), 100_000)
    assert body_bytes(fitted) < 100_000


def test_fit_outcome_non_ascii_results_stay_under_budget_as_sent() -> None:
    results = (RichResult({"text": "\U0001f600" * 15_000}),)
    fitted = fit_outcome(ExecutionOutcome(status=ExecutionStatus.OK, results=results), 100_000)
    assert body_bytes(fitted) < 100_000


def test_fit_outcome_quote_heavy_output_stays_under_lambda_limit_at_default_budget() -> None:
    quotes = '"' * (2 * MB)
    outcome = ExecutionOutcome(
        status=ExecutionStatus.OK,
        stdout=quotes,
        stderr=quotes,
        results=(RichResult({"text": '"' * MB}), RichResult({"text": '"' * MB})),
    )
    fitted = fit_outcome(outcome, DEFAULT_MAX)
    # What the Lambda runtime serialises: the handler's return value, with the body as a JSON string.
    handler_response = {
        "statusCode": 200,
        "body": response_body(fitted),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
    }
    assert len(json.dumps(handler_response).encode("utf-8")) < LAMBDA_RESPONSE_LIMIT
