"""A local stand-in for API Gateway's HTTP API, built from template.yaml (no Docker).

It does what `sam local start-api` does: turns each HTTP request into a payload-2.0 event and
calls the route's `lambda_handler`. Like Lambda, each function runs in its own worker
processes, one request per process at a time, so module state behaves as in a warm container.
Like API Gateway, a route with an authorizer first asks the authorizer function (its answer
cached by identity for the authorizer's TTL) and only then calls the route's function.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.template import (
    ROOT,
    Authorizer,
    CorsConfiguration,
    Route,
    cors_configuration,
    http_api_authorizers,
    http_api_routes,
    own_environment,
)

logger = logging.getLogger("local.gateway")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API's payload limit
# Bodies that API Gateway passes through as text; anything else arrives base64-encoded.
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


# --- the worker side (runs in each function's processes) ---------------------------------------
_modules: dict[str, ModuleType] = {}


def _init_worker(environment: dict[str, str], log_path: str | None = None) -> None:
    os.environ.update(environment)
    if log_path:
        # What Lambda sends to CloudWatch (JSON logs, EMF metrics) goes to a file, not the console.
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    for path in (str(ROOT / "layers" / "shared"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


@dataclass
class _LambdaContext:
    function_name: str
    aws_request_id: str
    deadline: float
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _invoke(code_dir: str, handler: str, function: str, event: dict, timeout: int) -> Any:
    module_name, function_name = handler.rsplit(".", 1)
    key = f"{code_dir}:{module_name}"
    if key not in _modules:
        spec = importlib.util.spec_from_file_location(
            f"{function}_{module_name}", Path(code_dir) / f"{module_name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[key] = module
    context = _LambdaContext(function, str(uuid.uuid4()), time.monotonic() + timeout)
    return getattr(_modules[key], function_name)(event, context)


def _worker_main(
    requests: Connection, replies: Connection, environment: dict[str, str], log_path: str | None
) -> None:
    """A worker process: one invocation at a time, for as long as the gateway keeps its pipe open."""
    # Ctrl-C in `make dev` reaches the whole process group; the gateway stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(environment, log_path)
    while True:
        try:
            call, args = requests.recv()
        except EOFError:  # the gateway shut this worker down, or is gone
            return
        try:
            reply = pickle.dumps((True, call(*args), ""))
        except BaseException as exc:  # re-raised in the gateway, as ProcessPoolExecutor does
            reply = _pickled_error(exc)
        replies.send_bytes(reply)


def _pickled_error(exc: BaseException) -> bytes:
    trace = "".join(traceback.format_exception(exc))
    try:
        reply = pickle.dumps((False, exc, trace))
        pickle.loads(reply)  # noqa: S301 - our own bytes; some exceptions pickle but cannot be rebuilt
    except Exception:
        reply = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}"), trace))
    return reply


# --- the gateway side ---------------------------------------------------------------------------
class _RemoteTraceback(Exception):
    """The worker's traceback, attached as the cause of the exception re-raised in the gateway."""


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    requests: Connection  # the gateway's ends of the worker's two pipes
    replies: Connection

    def close(self, kill: bool = False) -> None:
        self.requests.close()  # an idle worker reads EOF and exits
        self.replies.close()
        if kill:
            self.process.kill()
            self.process.join(1)  # reaped, not left a zombie


def _start_worker(function: str, environment: dict[str, str], log_path: str | None) -> _Worker:
    context = get_context("spawn")
    requests_in, requests_out = context.Pipe(duplex=False)
    replies_in, replies_out = context.Pipe(duplex=False)
    process = context.Process(
        target=_worker_main,
        args=(requests_in, replies_out, environment, log_path),
        name=f"{function}-worker",
        # Ended with the gateway; Lambda's functions start no multiprocessing children either.
        daemon=True,
    )
    process.start()
    # Only the worker holds these ends now: when it dies, the gateway reads EOF.
    requests_in.close()
    replies_out.close()
    return _Worker(process, requests_out, replies_in)


class _FunctionPool:
    """One function's worker processes, kept as Lambda keeps execution environments: a request takes
    the idle worker used last (the warmest), else starts a new one while fewer than `size` exist,
    else waits for one to be free. A worker that dies or times out is dropped; the next request that
    needs one starts another."""

    def __init__(self, start: Callable[[], _Worker], size: int) -> None:
        self._start = start
        self._size = max(1, size)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._starting = 0
        self._changed = threading.Condition()
        self._closed = False

    def invoke(self, call: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """`call(*args)` in a worker; FutureTimeout when no answer came within `timeout` seconds,
        waiting for a worker included (as `Future.result(timeout)` did)."""
        deadline = time.monotonic() + timeout
        worker = self._take(deadline)
        try:
            worker.requests.send((call, args))
            if not worker.replies.poll(max(0.0, deadline - time.monotonic())):
                raise FutureTimeout
            ok, value, trace = worker.replies.recv()
        except FutureTimeout:  # (an OSError, hence first) Lambda ends a timed-out environment too
            self._drop(worker, kill=True)
            raise
        except (EOFError, OSError) as exc:
            self._drop(worker)  # killed, out of memory: this request fails, the next gets a new worker
            worker.process.join(1)
            raise BrokenProcessPool(
                f"a worker process of this function died (exit code {worker.process.exitcode})"
            ) from exc
        except BaseException:  # an unreadable answer: the worker's state is unknown
            self._drop(worker, kill=True)
            raise
        self._give_back(worker)
        if ok:
            return value
        value.__cause__ = _RemoteTraceback(trace)
        raise value

    def _take(self, deadline: float) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the function's workers are shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.is_alive():
                        return worker
                    self._workers.discard(worker)  # died while idle
                    worker.close()
                if len(self._workers) + self._starting < self._size:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FutureTimeout
                self._changed.wait(left)
        try:
            worker = self._start()  # outside the lock: a spawn takes a while, others go on
        except BaseException:
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            self._workers.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._changed:
            if not self._closed:
                self._idle.append(worker)
                self._changed.notify()
                return
            self._workers.discard(worker)
        worker.close()

    def _drop(self, worker: _Worker, kill: bool = False) -> None:
        with self._changed:
            self._workers.discard(worker)
            self._changed.notify()
        worker.close(kill)

    def pids(self) -> list[int]:
        with self._changed:
            return sorted(w.process.pid for w in self._workers if w.process.pid is not None)

    def shutdown(self) -> None:
        """Idle workers exit now; busy ones when their invocation returns."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._workers.difference_update(idle)
            self._changed.notify_all()
        for worker in idle:
            worker.close()
        deadline = time.monotonic() + 2
        for worker in idle:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()


class FunctionPools:
    """Each function's worker processes, started on demand as Lambda scales: a new one when all of
    the function's workers are busy, up to `concurrency`; idle ones stay warm for the next request."""

    def __init__(self, environment: dict[str, str], concurrency: int, log_path: str | None = None) -> None:
        self._environment = environment
        self._log_path = log_path
        self._concurrency = concurrency
        self._pools: dict[str, _FunctionPool] = {}
        self._lock = threading.Lock()

    def invoke(self, route: Route, event: dict) -> Any:
        args = (str(route.code_dir), route.handler, route.function, event, route.timeout_seconds)
        return self._pool(route.function).invoke(_invoke, args, route.timeout_seconds + 1)

    def _pool(self, function: str) -> _FunctionPool:
        with self._lock:
            if function not in self._pools:
                environment = self._environment_of(function)
                self._pools[function] = _FunctionPool(
                    lambda: _start_worker(function, environment, self._log_path), self._concurrency
                )
            return self._pools[function]

    def warm(self, routes: list[Route]) -> None:
        """Start one worker of each function so the first request does not pay the process start."""
        for route in {r.function: r for r in routes}.values():
            environment = self._environment_of(route.function)
            self._pool(route.function).invoke(_init_worker, (environment, self._log_path), timeout=60)

    def workers(self, function: str) -> list[int]:
        """The process ids of the function's live workers, busy or idle."""
        with self._lock:
            pool = self._pools.get(function)
        return pool.pids() if pool is not None else []

    def _environment_of(self, function: str) -> dict[str, str]:
        return {**self._environment, **own_environment(function)}

    def shutdown(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.shutdown()


def build_event(route: Route, path_parameters: dict[str, str], request: RequestData) -> dict:
    headers = {name.lower(): value for name, value in request.headers}
    content_type = headers.get("content-type", "")
    is_text = request.body == b"" or content_type.startswith(_TEXT_TYPES)
    if is_text:
        try:
            body: str | None = request.body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False
    if not is_text:
        body = base64.b64encode(request.body).decode()
    query_pairs = parse_qsl(request.query, keep_blank_values=True)
    query: dict[str, str] = {}
    for name, value in query_pairs:  # repeated names are joined with commas, as API Gateway does
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.client_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode(),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if request.body:
        event["body"] = body
    return event


def build_authorizer_event(route_event: dict[str, Any], identity: list[str]) -> dict[str, Any]:
    """The payload-2.0 REQUEST event API Gateway sends a Lambda authorizer: the route's request
    as its function would see it, plus the route ARN and the identity source values."""
    context = route_event["requestContext"]
    arn = (
        f"arn:aws:execute-api:local:{context['accountId']}:{context['apiId']}/{context['stage']}"
        f"/{context['http']['method']}{route_event['rawPath']}"
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": arn,
        "identitySource": identity,
        "routeKey": route_event["routeKey"],
        "rawPath": route_event["rawPath"],
        "rawQueryString": route_event["rawQueryString"],
        "headers": dict(route_event["headers"]),
        "requestContext": json.loads(json.dumps(context)),  # a copy: the route's event is not touched
    }
    for optional in ("queryStringParameters", "pathParameters"):
        if optional in route_event:
            event[optional] = dict(route_event[optional])
    return event


# Answers kept per identity value; past this, expired ones are dropped before another is added.
MAX_CACHED_IDENTITIES = 1024


@dataclass(frozen=True)
class AuthDecision:
    """What the authorizer step decided: `status` is API Gateway's own answer (401, 403, 500) when
    the request stops here; None lets it through with the authorizer's `context`."""

    status: HTTPStatus | None
    context: dict[str, Any] | None = None


class Authorization:
    """API Gateway's Lambda authorizer step, in front of every route that names an authorizer.

    A request without one of the identity headers is 401 and the authorizer is not called; else
    the authorizer's answer for these identity values is used (from the cache while its TTL runs,
    allowed and denied answers alike), a denial is 403, and a failing authorizer is 500.
    """

    def __init__(
        self,
        authorizers: dict[str, Authorizer],
        pools: FunctionPools,
        cache_seconds: float | None = None,  # overrides every authorizer's ReauthorizeEvery
        clock: Any = time.monotonic,
    ) -> None:
        self._authorizers = authorizers
        self._pools = pools
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, AuthDecision]] = {}
        self._lock = threading.Lock()

    def check(self, route: Route, event: dict[str, Any]) -> AuthDecision:
        if route.authorizer is None:
            return AuthDecision(None)
        authorizer = self._authorizers[route.authorizer]
        identity = [str(event["headers"].get(name) or "") for name in authorizer.identity_headers]
        if not all(value.strip() for value in identity):
            return AuthDecision(HTTPStatus.UNAUTHORIZED)
        key = (authorizer.name, tuple(identity))
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        decision = self._ask(authorizer, build_authorizer_event(event, identity))
        ttl = authorizer.cache_seconds if self._cache_seconds is None else self._cache_seconds
        if decision.status != HTTPStatus.INTERNAL_SERVER_ERROR and ttl > 0:
            # The TTL runs from the answer, not the question: a cold authorizer's seconds of start-up
            # must not use up the cache's time (it did: a revoked key's cached answer had expired).
            answered = self._clock()
            with self._lock:
                if len(self._cache) >= MAX_CACHED_IDENTITIES:  # every new header value adds one
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > answered}
                self._cache[key] = (answered + ttl, decision)
        return decision

    def _ask(self, authorizer: Authorizer, event: dict[str, Any]) -> AuthDecision:
        try:
            answer = self._pools.invoke(authorizer.as_route(), event)
        except Exception:  # a crash or a timeout: API Gateway answers 500
            logger.exception("authorizer %s failed", authorizer.function)
            return AuthDecision(HTTPStatus.INTERNAL_SERVER_ERROR)
        allowed = _allowed(answer, authorizer.simple_responses)
        if allowed is None:
            logger.error("authorizer %s answered no valid response", authorizer.function)
            return AuthDecision(HTTPStatus.INTERNAL_SERVER_ERROR)
        if not allowed:
            return AuthDecision(HTTPStatus.FORBIDDEN)
        context = answer.get("context")
        return AuthDecision(None, dict(context) if isinstance(context, dict) else None)


def _allowed(answer: Any, simple: bool) -> bool | None:
    """The authorizer's yes or no; None when its answer is not a valid one."""
    if not isinstance(answer, dict):
        return None
    if simple:
        allowed = answer.get("isAuthorized")
        return allowed if isinstance(allowed, bool) else None
    # An IAM policy answer: allowed when a statement allows and none denies (resources not matched).
    statements = (answer.get("policyDocument") or {}).get("Statement")
    if not isinstance(statements, list) or not statements:
        return None
    effects = {str(s.get("Effect")) for s in statements if isinstance(s, dict)}
    return "Allow" in effects and "Deny" not in effects


@dataclass(frozen=True)
class RequestData:
    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str


def find_route(routes: list[Route], method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving `method raw_path`, as API Gateway picks it: when no route matches (an
    unknown path, or a known path with another method) the `$default` route, if the template has
    one. API Gateway has no 405: a method a path does not serve is just another unmatched request."""
    decoded = unquote(raw_path)
    for route in routes:
        params = route.match(method, decoded)
        if params is not None:
            return route, params
    default = next((route for route in routes if route.is_default), None)
    return (default, {}) if default is not None else None


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when many clients arrive at once.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        pools: FunctionPools,
        cors: CorsConfiguration | None = None,
        authorizers: dict[str, Authorizer] | None = None,
        authorizer_cache_seconds: float | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.pools = pools
        self.cors = cors
        self.authorization = Authorization(authorizers or {}, pools, authorizer_cache_seconds)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes | bytearray) else host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY on each accepted socket: the headers and the body go out in two writes, and with
    # Nagle on, the body waited for the client's delayed ACK of the headers (40 ms on a kept-alive
    # connection).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815 - stdlib names

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            status = self._respond()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-answer (a killed curl or sgw): nothing to tell it, no trace.
            self.close_connection = True
            logger.info("%s %s client disconnected", self.command, self.path)
            return
        logger.info(
            "%s %s %s %.0fms", self.command, self.path, status, (time.perf_counter() - started) * 1000
        )

    def _respond(self) -> int:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for the next request
            return self._send_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                f"the request body is larger than {MAX_BODY_BYTES} bytes",
                {"Connection": "close"},
            )
        body = self.rfile.read(length) if length else b""
        if self._is_cors_preflight():
            return self._send_preflight()
        found = find_route(self.server.routes, self.command, url.path)
        if found is None:
            # What API Gateway answers when no route matches and the API has no $default route.
            return self._send_plain(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
        route, params = found
        request = RequestData(
            self.command, url.path, url.query, list(self.headers.items()), body, self.client_address[0]
        )
        event = build_event(route, params, request)
        decision = self.server.authorization.check(route, event)
        if decision.status is not None:
            # API Gateway's own answers: the route's function never runs. With the CORS headers, so a
            # browser client can read its 401 or 403 (assumed as for an integration's answer).
            message = {"message": decision.status.phrase}
            return self._send_plain(decision.status, message, self._cors_headers())
        if route.authorizer is not None:
            event["requestContext"]["authorizer"] = {"lambda": decision.context}
        try:
            result = self.server.pools.invoke(route, event)
        except FutureTimeout:
            return self._send_plain(HTTPStatus.SERVICE_UNAVAILABLE, {"message": "Service Unavailable"})
        except Exception:
            # What API Gateway answers when the function itself fails; the trace stays here.
            logger.exception("function %s failed", route.function)
            return self._send_plain(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "Internal Server Error"})
        return self._send_lambda_result(result)

    def _send_error(
        self, status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None
    ) -> int:
        """The service's one error shape, for what the gateway answers itself."""
        request_id = base64.b64encode(uuid.uuid4().bytes[:12]).decode()
        payload = {"error": {"code": code, "message": message, "request_id": request_id}}
        return self._send_plain(status, payload, headers)

    def _send_lambda_result(self, result: Any) -> int:
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload 2.0 lets a function return any JSON value: API Gateway sends it as the body.
            return self._send_plain(HTTPStatus.OK, result)
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        status = int(result["statusCode"])
        self.send_response(status)
        cors = self._cors_headers()
        for name, value in (result.get("headers") or {}).items():
            if cors is not None and name.lower().startswith("access-control-"):
                continue  # with a CORS configuration, API Gateway ignores the function's own
            self.send_header(name, str(value))
        for name, value in (cors or {}).items():
            self.send_header(name, value)
        for cookie in result.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def _is_cors_preflight(self) -> bool:
        return (
            self.server.cors is not None
            and self.command == "OPTIONS"
            and bool(self.headers.get("origin"))
            and bool(self.headers.get("access-control-request-method"))
        )

    def _send_preflight(self) -> int:
        """API Gateway answers a CORS preflight itself when the API has a CorsConfiguration: no
        route and no function is involved, and an origin it does not allow gets no CORS headers."""
        cors = self.server.cors
        assert cors is not None
        self.send_response(HTTPStatus.NO_CONTENT)
        allowed = self._cors_headers()
        if allowed is not None:
            for name, value in allowed.items():
                if name != "Access-Control-Expose-Headers":
                    self.send_header(name, value)
            if cors.allow_methods:
                self.send_header("Access-Control-Allow-Methods", ",".join(cors.allow_methods))
            if cors.allow_headers:
                self.send_header("Access-Control-Allow-Headers", ",".join(cors.allow_headers))
            if cors.max_age is not None:
                self.send_header("Access-Control-Max-Age", str(cors.max_age))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return int(HTTPStatus.NO_CONTENT)

    def _cors_headers(self) -> dict[str, str] | None:
        """What API Gateway adds to a response to a request from an allowed Origin; None without a
        CORS configuration (the function's own headers pass through)."""
        cors = self.server.cors
        if cors is None:
            return None
        origin = self.headers.get("origin")
        if not origin or not cors.allows_origin(origin):
            return {}
        wildcard = "*" in cors.allow_origins and not cors.allow_credentials
        headers = {"Access-Control-Allow-Origin": "*" if wildcard else origin}
        if cors.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if cors.expose_headers:
            headers["Access-Control-Expose-Headers"] = ",".join(cors.expose_headers)
        return headers

    def _send_plain(self, status: HTTPStatus, payload: Any, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(payload, separators=(",", ":")).encode()  # compact, as API Gateway
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has no body: one would be read as the next response
            self.wfile.write(data)
        return int(status)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own answers (malformed request line, unknown method, huge headers), in our shape."""
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        error_code = EDGE_ERROR_CODES.get(status, "bad_request")
        self.close_connection = True
        self._send_error(status, error_code, (message or status.phrase)[:200], {"Connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is logged by _serve


# The stdlib answers these before any route is looked up; the OpenAPI document names the first two
# on every operation (sandbox_gateway.api.openapi.EDGE_LIMITS).
EDGE_ERROR_CODES = {
    HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large",
    HTTPStatus.NOT_IMPLEMENTED: "method_not_implemented",
}


def serve(
    host: str,
    port: int,
    environment: dict[str, str],
    concurrency: int = 8,
    log_path: str | None = None,
    authorizer_cache_seconds: float | None = None,
) -> Gateway:
    """`authorizer_cache_seconds` replaces the authorizers' ReauthorizeEvery (tests use seconds)."""
    routes = http_api_routes()
    pools = FunctionPools(environment, concurrency, log_path)
    gateway = Gateway(
        (host, port), routes, pools, cors_configuration(), http_api_authorizers(), authorizer_cache_seconds
    )
    threading.Thread(target=gateway.serve_forever, name="gateway", daemon=True).start()
    return gateway
