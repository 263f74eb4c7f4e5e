"""The one place a request body becomes a value: bounded, strict JSON or a 4xx.

Python's `json.loads` alone is not safe for hostile input, and each trap here once gave a raw 500:
- Nesting: the C scanner recurses, so `[[[[…` 100,000 deep raises RecursionError. The depth is
  measured before parsing (strings removed, then brackets peeled), without recursion; the
  number of objects and arrays is capped too (millions of `[]` cost seconds to build).
- Numbers: `int()` refuses more than 4,300 digits with a ValueError; `1e999` silently becomes
  `inf`; `NaN`/`Infinity` are not JSON. Number literals are length-capped and parsed by us.
- Bytes: API Gateway base64-encodes bodies it does not take for text; they must be UTF-8.
- Duplicate keys: the last one silently wins. Refused, naming the key.
- Lone surrogates (`"\\ud800"`) are valid JSON escapes but no valid text: no provider can run or
  store them faithfully (E2B answered 503, Docker ran nothing). Refused anywhere in the body.
- Media type: only `application/json` (and `+json`), with no charset other than UTF-8.
The size limit is checked before anything is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from sandbox_gateway.models.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType

MAX_DEPTH = 32
MAX_CONTAINERS = 10_000  # objects and arrays in one body; no request needs more than a few dozen
MAX_NUMBER_CHARS = 64
ENVELOPE_BYTES = 64 * 1024  # field names, ids and options around the largest payload field

# The closing quote is optional so an unterminated string is consumed in one match: were it
# required, every later quote would start a new scan to the end (quadratic on hostile input).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def max_body_bytes(max_file_bytes: int) -> int:
    """The largest body any route needs: a file upload (base64, 4 characters per 3 bytes) and its envelope."""
    return (max_file_bytes + 2) // 3 * 4 + ENVELOPE_BYTES


def parse_json_body(
    body: str | None, *, base64_encoded: bool, content_type: str | None, max_bytes: int
) -> Any:
    """The request's JSON value, or None for an empty body (the route decides if that is allowed)."""
    if not body:
        return None
    _require_json_media_type(content_type)
    text = _decoded_text(body, base64_encoded, max_bytes)
    _check_structure(text)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:  # pragma: no cover - _check_structure bounds nesting first
        raise InvalidJson(f"the request body nests deeper than {MAX_DEPTH} levels") from None
    _refuse_surrogates(value)
    return value


def _require_json_media_type(content_type: str | None) -> None:
    media_type, _, params = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = media_type[:100] or "none"
        raise UnsupportedMediaType(f"send the body as Content-Type: application/json (got {shown})")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("the body must be UTF-8 (charset=utf-8)")


def _decoded_text(body: str, base64_encoded: bool, max_bytes: int) -> str:
    too_large = PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    if not base64_encoded:
        if len(body) > max_bytes:  # characters: never more than the bytes they came as
            raise too_large
        try:
            size = len(body.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidJson("the request body is not valid UTF-8") from None
        if size > max_bytes:
            raise too_large
        return body
    if len(body) // 4 * 3 > max_bytes + 2:
        raise too_large
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidJson("the request body is not valid base64") from None
    if len(raw) > max_bytes:
        raise too_large
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("the request body is not valid UTF-8") from None


def _check_structure(text: str) -> None:
    # Outside strings a JSON text has no quotes, so removing whole strings first leaves its
    # structure; each pass removes the innermost empty pairs, one nesting level per pass.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    remaining = brackets
    for _ in range(MAX_DEPTH):
        if not remaining:
            break
        remaining = _EMPTY_PAIR.sub("", remaining)
    if remaining:
        raise InvalidJson(f"the request body nests deeper than {MAX_DEPTH} levels (or is unbalanced)")
    if len(brackets) > 2 * MAX_CONTAINERS:
        raise InvalidJson(f"the request body holds more than {MAX_CONTAINERS} objects and arrays")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise InvalidJson(f"the request body repeats the key {_shown(key)}")
        value[key] = item
    return value


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise InvalidJson(f"a number in the request body is longer than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise InvalidJson(f"a number in the request body is longer than {MAX_NUMBER_CHARS} characters")
    number = float(literal)
    if number in (float("inf"), float("-inf")):
        raise InvalidJson("a number in the request body is out of range")
    return number


def _refuse_constant(literal: str) -> Any:
    raise InvalidJson(f"{literal} is not valid JSON")


def _refuse_surrogates(value: Any) -> None:
    # Depth is bounded by _check_structure, so this recursion is too.
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise InvalidJson("the request body holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key)
            _refuse_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_surrogates(item)


def _shown(key: str) -> str:
    return json.dumps(key[:64] + ("…" if len(key) > 64 else ""))
