"""Control plane: the REST API the SDK reaches at ``E2B_API_URL``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

from .asgi import Request, Send, send_empty, send_error, send_json
from .sandbox import HostError, Sandbox, SandboxRegistry

_SANDBOX_PATH = re.compile(r"^/(?:v2/)?sandboxes/([^/]+)(/[a-z]+)?/?$")
DEFAULT_CREATE_TIMEOUT_S = 15


def _str_dict(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HostError(400, f"'{name}' must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _timeout(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HostError(400, "'timeout' must be a number of seconds")
    return int(value)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp rounds): naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def metadata_filter(request: Request) -> dict[str, str]:
    """Undo the SDK's double encoding: ``metadata=user%3Du%25201`` -> {"user": "u 1"}."""
    result: dict[str, str] = {}
    for raw in request.query.get("metadata", []):
        for key, values in parse_qs(raw, keep_blank_values=True).items():
            for value in values:
                result[unquote(key)] = unquote(value)
    return result


def _metrics(sandbox: Sandbox, request: Request) -> list[dict[str, Any]]:
    """The sandbox's samples between ``start`` and ``end`` (Unix seconds, both optional)."""
    try:
        start, end = (request.query_one(name) for name in ("start", "end"))
        bounds = (float(start) if start else None, float(end) if end else None)
    except ValueError:
        raise HostError(400, "'start' and 'end' must be Unix timestamps in seconds") from None
    return sandbox.metrics.between(*bounds) if sandbox.metrics is not None else []


class ControlPlane:
    def __init__(self, registry: SandboxRegistry) -> None:
        self.registry = registry
        # Every control-plane request but /health: tests pin how many a gateway call makes.
        self.requests = 0

    async def handle(self, request: Request, send: Send) -> None:
        if request.path == "/health" and request.method == "GET":
            body = {"status": "ok", "sandboxes": len(self.registry.sandboxes), "requests": self.requests}
            await send_json(send, 200, body)
            return
        self.requests += 1
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            await send_error(send, 401, "Invalid API key: X-API-KEY header is missing")
            return
        method, path = request.method, request.path.rstrip("/") or "/"
        if path in ("/sandboxes", "/v2/sandboxes"):
            if method == "POST":
                await self.create(request, send)
            elif method == "GET":
                await self.list(request, send)
            else:
                await send_error(send, 405, f"method {method} not allowed")
            return
        match = _SANDBOX_PATH.match(path)
        if not match:
            await send_error(send, 404, f"route {method} {path} not found")
            return
        sandbox_id, action = match.group(1), (match.group(2) or "")
        try:
            if action == "" and method == "GET":
                await send_json(send, 200, self.registry.get(sandbox_id).to_json(detail=True))
            elif action == "" and method == "DELETE":
                killed = await self.registry.kill(sandbox_id)
                if killed:
                    await send_empty(send, 204)
                else:
                    await send_error(send, 404, f"sandbox {sandbox_id} not found")
            elif action == "/connect" and method == "POST":
                body = await request.json()
                sandbox = self.registry.extend(sandbox_id, _timeout(body.get("timeout"), None))
                await send_json(send, 200, sandbox.created_json())
            elif action in ("/timeout", "/refreshes") and method == "POST":
                body = await request.json()
                if action == "/timeout":
                    timeout = _timeout(body.get("timeout"), None)
                    if timeout is None:
                        raise HostError(400, "'timeout' is required")
                    self.registry.set_timeout(sandbox_id, timeout)
                else:
                    self.registry.extend(sandbox_id, _timeout(body.get("duration"), None))
                await send_empty(send, 204)
            elif action == "/metrics" and method == "GET":
                await send_json(send, 200, _metrics(self.registry.get(sandbox_id), request))
            elif action in ("/pause", "/resume"):
                self.registry.get(sandbox_id)
                raise HostError(400, "pause/resume is not supported by the local E2B host")
            else:
                await send_error(send, 404, f"route {method} {path} not found")
        except HostError as exc:
            await send_error(send, exc.status, exc.message)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            await send_error(send, 400, f"invalid request body: {exc}")

    async def create(self, request: Request, send: Send) -> None:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise HostError(400, "request body must be a JSON object")
            template = body.get("templateID")
            if not isinstance(template, str) or not template:
                raise HostError(400, "'templateID' is required")
            allow = body.get("allow_internet_access", body.get("allowInternetAccess", True))
            if allow is not None and not isinstance(allow, bool):
                raise HostError(400, "'allow_internet_access' must be a boolean")
            network = body.get("network")
            if network is not None and not isinstance(network, dict):
                raise HostError(400, "'network' must be an object")
            # Denied, the sandbox gets a network namespace of its own with only its loopback;
            # allowed, it shares the host's (which includes the host's loopback).
            deny = (network or {}).get("denyOut") or []
            if not isinstance(deny, list):
                raise HostError(400, "'network.denyOut' must be a list")
            if "0.0.0.0/0" in deny:  # what allow_internet_access=False means to E2B
                allow = False
            sandbox = await self.registry.create(
                template=template,
                timeout=_timeout(body.get("timeout"), DEFAULT_CREATE_TIMEOUT_S) or DEFAULT_CREATE_TIMEOUT_S,
                metadata=_str_dict(body.get("metadata"), "metadata"),
                env_vars=_str_dict(body.get("envVars"), "envVars"),
                allow_internet_access=bool(allow) if allow is not None else True,
            )
        except HostError as exc:
            await send_error(send, exc.status, exc.message)
            return
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            await send_error(send, 400, f"invalid JSON body: {exc}")
            return
        await send_json(send, 201, sandbox.created_json())

    async def list(self, request: Request, send: Send) -> None:
        wanted = metadata_filter(request)
        states: set[str] = set()
        for raw in request.query.get("state", []):
            states.update(s for s in raw.split(",") if s)
        template = request.query_one("template")
        started_after = request.query_one("startedAfter")
        try:
            after = _micros(datetime.fromisoformat(started_after)) if started_after else None
            limit = int(request.query_one("limit") or 100)
            offset = int(request.query_one("nextToken") or 0)
        except ValueError:
            await send_error(send, 400, "'limit' and 'nextToken' must be integers, 'startedAfter' ISO-8601")
            return
        if limit < 1:
            await send_error(send, 400, "'limit' must be at least 1")
            return
        sandboxes = [
            s
            for s in self.registry.sandboxes.values()
            # gone(), not closed: an expired one the reaper has not killed yet is not listed
            if not s.gone()
            and (not states or "running" in states)
            and (template is None or s.template_id == template)
            # "at or after" (the SDK's words), in whole microseconds as startedAt is reported
            and (after is None or _micros(datetime.fromtimestamp(s.started_at, tz=UTC)) >= after)
            and all(s.metadata.get(k) == v for k, v in wanted.items())
        ]
        reverse = (request.query_one("order") or "desc").lower() != "asc"
        sandboxes.sort(key=lambda s: (s.started_at, s.sandbox_id), reverse=reverse)
        if request.path.startswith("/v2/"):
            page = sandboxes[offset : offset + limit]
            headers = {"x-next-token": str(offset + limit)} if offset + limit < len(sandboxes) else {}
        else:
            page, headers = sandboxes, {}
        await send_json(send, 200, [s.to_json() for s in page], headers)
