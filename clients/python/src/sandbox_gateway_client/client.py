"""The HTTP client: `Gateway` opens sessions, a `Session` runs code and moves files.

Retries: a 409 (the session is busy or starting, or a create with the same Idempotency-Key is in
flight) and a 503 (the provider or storage is unavailable) are answered before anything ran, so
they are retried after the server's `Retry-After`. A connection that fails before the request was
sent is retried too; one that fails after is retried only when repeating the request is harmless:
every call but `run` (a create carries an Idempotency-Key, so a repeat returns the first answer;
so does a `submit`, and a `run` or file write given an `idempotency_key`).

A 429 is retried only when nothing ran and waiting can help: `quota_exceeded` with a `Retry-After`
(the tenant is at its live-session limit; another session may end) after that delay, and API
Gateway's own throttling answer (no error code) with backoff. A quota that waiting cannot change
(lifetime, execution timeout, code or file size) raises `QuotaExceeded` at once.

Async executions: `submit` answers at once with a `QueuedExecution`; `wait` polls the record until
it is finished. A large result is a presigned URL, fetched without the API key (the URL is the
credential, and the key must not travel to the storage service).
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from sandbox_gateway_client.errors import (
    ConnectionFailed,
    GatewayError,
    ProviderNotConfigured,
    Unauthorized,
    error_for_code,
)
from sandbox_gateway_client.models import (
    CallbackSecret,
    Environment,
    EnvironmentList,
    Execution,
    ExecutionPage,
    ExecutionRecord,
    FileContent,
    FileEntry,
    FileList,
    QueuedExecution,
    SessionInfo,
    SessionList,
    Usage,
    WrittenFile,
)

Progress = Callable[[int, int], None]
"""Called as `progress(bytes_done, bytes_total)` while a file moves; total is 0 when unknown."""

MAX_RETRY_AFTER_SECONDS = 30.0  # a server asking for longer is better answered by the caller
BACKOFF_SECONDS = 0.5  # first wait when the server gave no Retry-After; doubles each attempt
MAX_BACKOFF_SECONDS = 8.0
RETRIED_STATUSES = frozenset({409, 429, 503})
SESSIONS_PAGE_LIMIT = 100  # the largest page GET /api/sessions serves
EXECUTIONS_PAGE_LIMIT = 100  # the largest page GET /api/sessions/{id}/executions serves
POLL_INTERVAL_SECONDS = 1.0
CHUNK_BYTES = 64 * 1024
EXECUTE_TIMEOUT_MARGIN_SECONDS = 15.0  # an execute answers soon after its own timeout_seconds
OCTET_STREAM = "application/octet-stream"

M = TypeVar("M", bound=pydantic.BaseModel)


class Gateway:
    """A connection to one Sandbox Gateway: `Gateway("http://127.0.0.1:3000")`.

    `url` and `api_key` default to the environment variables `SGW_URL` and `SGW_API_KEY`.
    `sleep` is how retries and `wait` pause, `clock` how `wait` tells time (tests pass their own).
    `on_retry(error, delay)` is told before each retry's wait (a connection that failed comes as
    `ConnectionFailed`), e.g. to say why nothing happens.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[GatewayError, float], None] | None = None,
    ) -> None:
        url = url or os.environ.get("SGW_URL")
        if not url:
            raise ValueError(
                "no gateway URL: pass Gateway(url=...) or set SGW_URL "
                "(`make dev` prints the value, e.g. http://127.0.0.1:3000)"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        api_key = api_key if api_key is not None else os.environ.get("SGW_API_KEY")
        headers = {"Accept": "application/json", "User-Agent": f"sandbox-gateway-client/{_version()}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        self._on_retry = on_retry
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        # Presigned result URLs: no base URL, and no Authorization (the URL is its own credential).
        self._bare = httpx.Client(
            headers={"User-Agent": headers["User-Agent"]}, timeout=timeout, transport=transport
        )

    # --- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()
        self._bare.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gateway({self.url!r})"

    # --- the API -----------------------------------------------------------------------------------
    def environments(self) -> list[Environment]:
        response = self._request("GET", "/api/environments")
        return _parse(EnvironmentList, response).environments

    def create_session(
        self,
        environment: str = "e2b-python",
        *,
        provider: str | None = None,
        agent: str | None = None,
        timeout_seconds: int | None = None,
        metadata: dict[str, str] | None = None,
        envs: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Start a session (its sandbox is running when this returns). Use it as a context manager
        to close it on exit. The same `idempotency_key` within 24 h returns the same session."""
        body: dict[str, Any] = {"environment": environment}
        optional = {
            "provider": provider,
            "agent": agent,
            "timeout_seconds": timeout_seconds,
            "metadata": metadata,
            "envs": envs,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        # One key for every attempt: a retry after a lost answer returns the session already made.
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = self._request("POST", "/api/sessions", json=body, headers=headers)
        info = _parse(SessionInfo, response)
        return Session(self, info.session_id, info)

    def list_sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        """This caller's sessions, newest first; `limit` caps the total (every page when None)."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        sessions: list[SessionInfo] = []
        token: str | None = None
        while True:
            wanted = SESSIONS_PAGE_LIMIT if limit is None else min(SESSIONS_PAGE_LIMIT, limit - len(sessions))
            params: dict[str, Any] = {"limit": wanted}
            if token:
                params["next_token"] = token
            page = _parse(SessionList, self._request("GET", "/api/sessions", params=params))
            sessions.extend(page.sessions)
            token = page.next_token
            if not token or (limit is not None and len(sessions) >= limit):
                return sessions if limit is None else sessions[:limit]

    def get_session(self, session_id: str) -> Session:
        info = _parse(SessionInfo, self._request("GET", _session_path(session_id)))
        return Session(self, info.session_id, info)

    def session(self, session_id: str) -> Session:
        """A handle on an existing session, without a request (`info` stays None until one)."""
        return Session(self, session_id, None)

    def usage(self, since: str | date | None = None, until: str | date | None = None) -> Usage:
        """The caller's tenant: live sessions, quotas, and usage per UTC day from `since` to
        `until` (YYYY-MM-DD or a date; the server's default is the last 30 days up to today)."""
        params = {name: _day(value) for name, value in (("since", since), ("until", until)) if value}
        return _parse(Usage, self._request("GET", "/api/usage", params=params))

    def submit(
        self,
        code: str,
        *,
        environment: str = "e2b-python",
        language: str | None = None,
        timeout_seconds: int | None = None,
        envs: dict[str, str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> QueuedExecution:
        """Queue `code` to run in a one-off session of `environment`, which the worker opens and
        closes; returns at once (`wait` follows it). See `Session.submit` for the arguments."""
        body: dict[str, Any] = {"environment": environment, "code": code}
        return self._submit(
            body,
            language=language,
            timeout_seconds=timeout_seconds,
            envs=envs,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """An execution as of now (any mode: a `run` is recorded too, under `Execution.execution_id`)."""
        return _record(self._request("GET", _execution_path(execution_id)))

    def wait(
        self,
        execution_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        fetch: bool = False,
    ) -> ExecutionRecord:
        """Poll the execution until it is finished (succeeded, failed or timed_out) and return it.

        Raises `TimeoutError` when it is still queued or running after `timeout` seconds (None: no
        limit). With `fetch`, a large result (`result_url`) is downloaded into `result`, so
        `record.execution` is set whenever the code ran."""
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            record = self.get_execution(execution_id)
            if record.finished:
                return self.fetch_result(record) if fetch else record
            left = None if deadline is None else deadline - self._clock()
            if left is not None and left <= 0:
                raise TimeoutError(f"execution {execution_id} is still {record.status} after {timeout:g} s")
            self._sleep(poll_interval if left is None else min(poll_interval, left))

    def fetch_result(self, record: ExecutionRecord) -> ExecutionRecord:
        """`record` with its large result downloaded from `result_url` into `result` (unchanged when
        it has no `result_url`). The presigned URL gets no API key. An expired URL (403) is
        replaced by a fresh one from the gateway, once."""
        if record.result is not None or not record.result_url:
            return record
        try:
            response = self._request("GET", record.result_url, http=self._bare)
        except GatewayError as error:
            if error.status != 403:
                raise
            record = self.get_execution(record.execution_id)
            if record.result is not None or not record.result_url:
                return record
            response = self._request("GET", record.result_url, http=self._bare)
        result = _parse(Execution, response)  # checks the shape before it becomes `result`
        return record.model_copy(update={"result": result.model_dump(mode="json")})

    def callback_secret(self) -> str:
        """The key that signs this tenant's callbacks (check them with `verify_signature`)."""
        return _parse(CallbackSecret, self._request("GET", "/api/callbacks/secret")).secret

    def rotate_callback_secret(self) -> str:
        """A new signing key, returned; the old one stops signing at once."""
        # Not repeatable: a retry after a lost answer would rotate again, and the new key be lost.
        response = self._request("POST", "/api/callbacks/secret", repeatable=False)
        return _parse(CallbackSecret, response).secret

    def _submit(
        self,
        body: dict[str, Any],
        *,
        language: str | None,
        timeout_seconds: int | None,
        envs: dict[str, str] | None,
        callback_url: str | None,
        idempotency_key: str | None,
    ) -> QueuedExecution:
        body["mode"] = "async"
        optional = {"language": language, "timeout_seconds": timeout_seconds, "callback_url": callback_url}
        body.update({name: value for name, value in optional.items() if value is not None})
        if envs:
            body["envs"] = envs
        # One key for every attempt: a retry after a lost answer finds the execution already queued.
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = self._request("POST", "/api/e2b/execute", json=body, headers=headers)
        return _parse(QueuedExecution, response)

    # --- one request, with retries ---------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        repeatable: bool = True,
        timeout: float | None = None,
        stream: bool = False,
        http: httpx.Client | None = None,
    ) -> httpx.Response:
        """Send one request and return its successful response, or raise the typed error.

        `repeatable` says whether sending it twice is harmless (False only for an execute).
        `content` builds a fresh body for each attempt (an upload that reports its progress).
        With `stream`, the caller reads and closes the returned response. `http` is another
        client to send it with (the one without the API key, for a presigned URL).
        """
        http = http or self._http
        attempt = 0
        while True:
            request = http.build_request(
                method,
                path,
                json=json,
                params=params,
                headers=headers,
                content=content() if content else None,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = http.send(request, stream=stream)
            except httpx.UnsupportedProtocol as error:
                raise ConnectionFailed(f"{self.url} is not an http(s) URL: {error}") from error
            except httpx.TransportError as error:
                # A connect error means nothing was sent; anything later may have reached the server.
                unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                failed = ConnectionFailed(f"{method} {request.url.path} failed: {_describe(error)}")
                if attempt < self.max_retries and (repeatable or unsent):
                    self._wait(failed, _backoff(attempt))
                    attempt += 1
                    continue
                raise failed from error
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            failure = error_from_response(response)
            if attempt < self.max_retries and _retryable(failure, repeatable):
                self._wait(failure, _delay(failure.retry_after, attempt))
                attempt += 1
                continue
            raise failure

    def _wait(self, reason: GatewayError, delay: float) -> None:
        if self._on_retry is not None:
            self._on_retry(reason, delay)
        self._sleep(delay)


class Session:
    """One session: `run` code in it, move `files`, `keep_alive`, `close`.

    As a context manager it closes the session on exit, also when the block raised.
    """

    def __init__(self, gateway: Gateway, session_id: str, info: SessionInfo | None = None) -> None:
        self._gateway = gateway
        self.id = session_id
        self.info = info  # as of the last answer about this session
        self.files = SessionFiles(gateway, session_id)

    def __repr__(self) -> str:
        status = self.info.status if self.info else "unknown"
        return f"Session({self.id!r}, status={status!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except GatewayError as close_error:
            if exc is None:
                raise
            # The block's own exception is the one to see; the failed close rides along.
            exc.add_note(f"closing session {self.id} also failed: {close_error}")

    def refresh(self) -> SessionInfo:
        self.info = _parse(SessionInfo, self._gateway._request("GET", _session_path(self.id)))
        return self.info

    def run(
        self,
        code: str,
        *,
        language: str | None = None,
        timeout_seconds: int | None = None,
        envs: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Run `code` in this session (state is kept between runs of one language). Code that
        raises or times out is an `Execution` with `status` and `error`, not an exception.

        The same `idempotency_key` and code within 24 h return the first run's answer instead of
        running it again; with one, a request that may have arrived is retried too."""
        body: dict[str, Any] = {"session_id": self.id, "code": code}
        if language is not None:
            body["language"] = language
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        if envs:
            body["envs"] = envs
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        # The server answers soon after the code's own limit; wait at least that long.
        wait = max(self._gateway.timeout, (timeout_seconds or 0) + EXECUTE_TIMEOUT_MARGIN_SECONDS)
        response = self._gateway._request(
            "POST",
            "/api/e2b/execute",
            json=body,
            headers=headers,
            repeatable=idempotency_key is not None,
            timeout=wait,
        )
        return _parse(Execution, response)

    def submit(
        self,
        code: str,
        *,
        language: str | None = None,
        timeout_seconds: int | None = None,
        envs: dict[str, str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> QueuedExecution:
        """Queue `code` to run in this session and return at once; `Gateway.wait(execution_id)`
        gives its record when it is finished. `timeout_seconds` may go up to the worker's limit
        (minutes). `callback_url` (https) receives the finished execution's body, signed (see
        `verify_signature`). An Idempotency-Key is always sent (a new one when None), so a retry
        never queues the code twice; the same key and code within 24 h return the first execution."""
        body: dict[str, Any] = {"session_id": self.id, "code": code}
        return self._gateway._submit(
            body,
            language=language,
            timeout_seconds=timeout_seconds,
            envs=envs,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )

    def executions(self, *, limit: int | None = None) -> list[ExecutionRecord]:
        """This session's executions, newest first, without their results (`Gateway.get_execution`
        has them); `limit` caps the total (every page when None)."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        found: list[ExecutionRecord] = []
        token: str | None = None
        while True:
            wanted = (
                EXECUTIONS_PAGE_LIMIT if limit is None else min(EXECUTIONS_PAGE_LIMIT, limit - len(found))
            )
            params: dict[str, Any] = {"limit": wanted} | ({"next_token": token} if token else {})
            response = self._gateway._request("GET", f"{_session_path(self.id)}/executions", params=params)
            page = _parse(ExecutionPage, response)
            found.extend(page.executions)
            token = page.next_token
            if not token or (limit is not None and len(found) >= limit):
                return found if limit is None else found[:limit]

    def keep_alive(self, timeout_seconds: int | None = None) -> SessionInfo:
        """Extend the session's lifetime from now (the server's default when None)."""
        body = {} if timeout_seconds is None else {"timeout_seconds": timeout_seconds}
        response = self._gateway._request("POST", f"{_session_path(self.id)}/keepalive", json=body)
        self.info = _parse(SessionInfo, response)
        return self.info

    def close(self) -> SessionInfo:
        """Kill the sandbox and close the session; closing an ended session again is harmless."""
        self.info = _parse(SessionInfo, self._gateway._request("DELETE", _session_path(self.id)))
        return self.info


class SessionFiles:
    """Files in a session's sandbox. Paths are under /workspace, /home/user or /tmp; a relative
    path means /workspace/<path>."""

    def __init__(self, gateway: Gateway, session_id: str) -> None:
        self._gateway = gateway
        self._session_id = session_id

    def write(
        self,
        path: str,
        data: bytes | str,
        *,
        progress: Progress | None = None,
        idempotency_key: str | None = None,
    ) -> WrittenFile:
        """Write `data` (str is written as UTF-8) to `path`, replacing any file there. The same
        `idempotency_key` and content within 24 h return the first answer without writing again."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        body = {"session_id": self._session_id, "file_path": path, "content": base64.b64encode(raw).decode()}
        key = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        if progress is None:
            response = self._gateway._request("POST", "/api/e2b/files", json=body, headers=key or None)
            return _parse(WrittenFile, response)
        encoded = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(encoded))} | key
        response = self._gateway._request(
            "POST",
            "/api/e2b/files",
            headers=headers,
            content=lambda: _reporting_chunks(encoded, len(raw), progress),
        )
        written = _parse(WrittenFile, response)
        progress(len(raw), len(raw))
        return written

    def read(self, path: str, *, progress: Progress | None = None) -> bytes:
        """The file's bytes, streamed (`progress` is called as they arrive)."""
        response = self._gateway._request(
            "GET", _file_path(self._session_id, path), headers={"Accept": OCTET_STREAM}, stream=True
        )
        try:
            if OCTET_STREAM not in response.headers.get("content-type", ""):
                # A server that ignores Accept answers JSON with base64 content.
                response.read()
                return base64.b64decode(_parse(FileContent, response).content)
            # A compressed answer's length is not the file's: then the total is unknown.
            compressed = response.headers.get("content-encoding", "identity") != "identity"
            total = 0 if compressed else int(response.headers.get("content-length") or 0)
            chunks: list[bytes] = []
            done = 0
            for chunk in response.iter_bytes(CHUNK_BYTES):
                chunks.append(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            return b"".join(chunks)
        except httpx.TransportError as error:
            raise ConnectionFailed(f"reading {path} failed: {_describe(error)}") from error
        finally:
            response.close()

    def list(self, directory: str = "/workspace") -> list[FileEntry]:
        """The entries of `directory`, sorted by name (every page)."""
        entries: list[FileEntry] = []
        token: str | None = None
        while True:
            params = {"directory": directory} | ({"next_token": token} if token else {})
            response = self._gateway._request(
                "GET", f"/api/e2b/files/{_segment(self._session_id)}", params=params
            )
            page = _parse(FileList, response)
            entries.extend(page.entries)
            token = page.next_token
            if not token:
                return entries

    def delete(self, path: str) -> None:
        self._gateway._request("DELETE", _file_path(self._session_id, path))


# --- helpers ----------------------------------------------------------------------------------------
def error_from_response(response: httpx.Response) -> GatewayError:
    """The typed exception for an error answer; `http_<status>` when its body has no error code."""
    retry_after = _retry_after(response.headers.get("retry-after"))
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        return error_for_code(code)(
            str(error.get("message") or code),
            status=status,
            code=code,
            request_id=error.get("request_id"),
            details=error.get("details"),
            retry_after=retry_after,
        )
    # Not the gateway's own shape: API Gateway's {"message": ...}, a proxy's HTML page, nothing.
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message) if message else (response.text.strip()[:200] or response.reason_phrase)
    # API Gateway's authorizer answers a missing key 401 and a refused one 403, in its own shape.
    if status == 401 or (status == 403 and message):
        hint = _KEY_HINTS[status]
        return Unauthorized(f"{hint} ({text})", status=status, code=f"http_{status}", retry_after=retry_after)
    return GatewayError(text, status=status, code=f"http_{status}", retry_after=retry_after)


_KEY_HINTS = {
    401: "no API key reached the gateway: pass api_key= or set SGW_API_KEY",
    403: "the API key was refused: unknown, malformed or revoked",
}


def _retryable(error: GatewayError, repeatable: bool) -> bool:
    if error.status not in RETRIED_STATUSES or isinstance(error, ProviderNotConfigured):
        return False
    if error.status == 429:
        # Refused before anything ran: API Gateway's throttle (no code), or a quota that says
        # when to come back. A quota without Retry-After will not change by waiting.
        return error.code == "http_429" or error.retry_after is not None
    # A bare 503 is API Gateway's "the function did not answer in time": the execute may have run.
    answered_by_gateway = error.code != f"http_{error.status}"
    return repeatable or answered_by_gateway


def _delay(retry_after: float | None, attempt: int) -> float:
    if retry_after is None:
        return _backoff(attempt)
    return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)


def _backoff(attempt: int) -> float:
    return min(BACKOFF_SECONDS * 2.0**attempt, MAX_BACKOFF_SECONDS)


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (then the time until it)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _day(value: str | date) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, date) else value


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as error:
        raise GatewayError(
            f"unexpected answer to {response.request.method} {response.request.url.path}: "
            f"not a {model.__name__} ({error.error_count()} problems)",
            status=response.status_code,
            code="invalid_response",
        ) from error


def _reporting_chunks(body: bytes, total: int, progress: Progress) -> Iterator[bytes]:
    # The body is JSON around the base64 content: report the share sent as bytes of the file.
    progress(0, total)
    for start in range(0, len(body), CHUNK_BYTES):
        yield body[start : start + CHUNK_BYTES]
        sent = min(start + CHUNK_BYTES, len(body))
        progress(min(total, sent * total // len(body)), total)


def _segment(text: str) -> str:
    return quote(text, safe="")


def _session_path(session_id: str) -> str:
    return f"/api/sessions/{_segment(session_id)}"


def _execution_path(execution_id: str) -> str:
    return f"/api/executions/{_segment(execution_id)}"


def _record(response: httpx.Response) -> ExecutionRecord:
    """An execution record whose inline result, when there is one, is an `Execution` too."""
    record = _parse(ExecutionRecord, response)
    if record.result is not None:
        try:
            record.execution  # noqa: B018 - validated here so that reading it later cannot fail
        except pydantic.ValidationError as error:
            raise GatewayError(
                f"unexpected answer to GET {response.request.url.path}: its result is not an "
                f"Execution ({error.error_count()} problems)",
                status=response.status_code,
                code="invalid_response",
            ) from error
    return record


def _file_path(session_id: str, path: str) -> str:
    """The URL of a file: each segment percent-encoded, "/" kept between them; an absolute path
    starts with %2F (the URL's path is otherwise taken relative to /workspace)."""
    absolute = path.startswith("/")
    relative = path[1:] if absolute else path
    encoded = "/".join(_segment(part) for part in relative.split("/"))
    return f"/api/e2b/files/{_segment(session_id)}/{'%2F' if absolute else ''}{encoded}"


def _describe(error: httpx.TransportError) -> str:
    return str(error) or type(error).__name__


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("sandbox-gateway-client")
    except PackageNotFoundError:
        return "0"
