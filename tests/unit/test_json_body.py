"""parse_json_body: the one strict, bounded parse step every request body goes through."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any

import pytest
from sandbox_gateway.api.body import MAX_CONTAINERS, MAX_DEPTH, max_body_bytes, parse_json_body
from sandbox_gateway.models.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType

LIMIT = max_body_bytes(4 * 1024 * 1024)


def parse(body: str, content_type: str | None = "application/json", **kwargs: Any) -> Any:
    options = {"base64_encoded": False, "max_bytes": LIMIT} | kwargs
    return parse_json_body(body, content_type=content_type, **options)


def test_parse_json_body_returns_the_value() -> None:
    assert parse('{"a": [1, 2.5, "x", null, true], "b": {"c": "\\ud83d\\ude00"}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": "\U0001f600"},
    }


def test_parse_json_body_of_an_empty_body_is_none_whatever_the_type() -> None:
    assert parse("", content_type=None) is None
    assert parse_json_body(None, base64_encoded=True, content_type="text/plain", max_bytes=LIMIT) is None


def test_parse_json_body_accepts_exactly_the_depth_limit() -> None:
    assert parse("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(InvalidJson, match="deeper than"):
        parse("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_parse_json_body_ignores_brackets_and_escaped_quotes_inside_strings() -> None:
    code = '[[[[{{{{ \\" ]]]' * 10_000
    assert parse(json.dumps({"code": code})) == {"code": code}


def test_parse_json_body_caps_the_number_of_containers() -> None:
    with pytest.raises(InvalidJson, match=str(MAX_CONTAINERS)):
        parse("[" + ",".join(["[]"] * (MAX_CONTAINERS + 1)) + "]")


@pytest.mark.parametrize(
    "body",
    [
        '{"code": "' + 'a\\"' * 1_500_000,  # unterminated: each quote once restarted a scan to the end
        '"' * 5_000_000,
        "[" + ",".join(["[]"] * 1_000_000) + "]",
        json.dumps({"code": '\\"' * 1_300_000}),
    ],
    ids=["unterminated-string", "quotes", "many-arrays", "escapes"],
)
def test_parse_json_body_costs_at_most_about_a_second_on_hostile_bodies(body: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(InvalidJson):
        parse(body)
    assert time.perf_counter() - started < 3


def test_parse_json_body_checks_the_size_before_decoding_base64() -> None:
    huge = "A" * (LIMIT // 3 * 4 + 400)  # valid base64 of zero bytes would be cheap to check too
    with pytest.raises(PayloadTooLarge):
        parse(huge, base64_encoded=True)


def test_parse_json_body_decodes_base64_utf8() -> None:
    body = base64.b64encode('{"s": "héllo"}'.encode()).decode()
    assert parse(body, base64_encoded=True) == {"s": "héllo"}


@pytest.mark.parametrize("content_type", ["application/json; charset=iso-8859-1", "text/json", "json", ""])
def test_parse_json_body_refuses_other_media_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse("{}", content_type=content_type)


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400", "1" * 65])
def test_parse_json_body_refuses_numbers_python_cannot_hold_faithfully(literal: str) -> None:
    with pytest.raises(InvalidJson):
        parse('{"n": ' + literal + "}")


def test_parse_json_body_names_a_long_duplicate_key_shortened() -> None:
    key = "k" * 1000
    with pytest.raises(InvalidJson) as caught:
        parse(json.dumps({key: 1})[:-1] + ", " + json.dumps(key) + ": 2}")
    assert len(caught.value.message) < 200
