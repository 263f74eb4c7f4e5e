"""Executions as records: run now (sync) or queue for the worker (async, SQS, EventBridge), keep
the result, report completion. Every entry point (HTTP, queue, bus) calls this one service.

The rules (docs/decisions/0007-async-executions.md): only `queued → running` starts code, so a
redelivered message never runs twice; a result too large for the table goes to the results
store; publishing and callbacks never fail an execution that has run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import WORKER_MARGIN_SECONDS, Settings
from sandbox_gateway.models.api import ExecuteResponse
from sandbox_gateway.models.errors import (
    AsyncUnavailable,
    DomainError,
    ExecutionNotFound,
    InvalidMessage,
    InvalidRequest,
    SessionBusy,
)
from sandbox_gateway.models.execution import ExecutionStatus
from sandbox_gateway.models.execution_record import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionSource,
    ExecutionState,
    Failure,
    PendingRun,
    execution_id_for_message,
    iso8601,
    new_execution_id,
)
from sandbox_gateway.models.messages import ExecutionRequestedMessage
from sandbox_gateway.ports import (
    CallbackSecrets,
    CallbackSender,
    ExecutionEvents,
    ExecutionPage,
    ExecutionQueue,
    ExecutionStore,
    ResultStore,
)
from sandbox_gateway.services.executions import ExecutionReport, ExecutionService
from sandbox_gateway.services.sessions import SessionService

logger = Logger(child=True)

# The agent name of the sessions the worker creates for one-off executions.
ONE_OFF_AGENT = "async-worker"
# Code larger than this waits for the worker in the results store, not in the record's item.
INLINE_PENDING_MAX_BYTES = 200 * 1024
# A queued execution whose session is busy waits this long for it (then fails session_busy).
BUSY_WAIT_SECONDS = 120
BUSY_POLL_SECONDS = 0.5


class TenantDirectory(Protocol):
    def tenant_exists(self, tenant_id: str) -> bool: ...


@dataclass(frozen=True)
class AsyncPorts:
    """What async and event-triggered executions need beyond the records; None: not deployed."""

    queue: ExecutionQueue
    events: ExecutionEvents | None = None
    callbacks: CallbackSender | None = None
    secrets: CallbackSecrets | None = None


@dataclass(frozen=True)
class ExecutionView:
    """A record as the API shows it: its result inline, or a presigned URL to it."""

    record: ExecutionRecord
    result: dict[str, Any] | None
    result_url: str | None = None
    result_url_expires_at: int | None = None


class ExecutionOrchestrator:
    def __init__(
        self,
        executions: ExecutionService,
        sessions: SessionService,
        catalogue: EnvironmentCatalogue,
        records: ExecutionStore,
        results: ResultStore | None,
        *,
        settings: Settings,
        async_ports: AsyncPorts | None = None,
        tenants: TenantDirectory | None = None,
        check_callback_url: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._executions = executions
        self._sessions = sessions
        self._catalogue = catalogue
        self._records = records
        self._results = results
        self._settings = settings
        self._async = async_ports
        self._tenants = tenants
        self._check_callback_url = check_callback_url or (lambda url: None)
        self._clock = clock
        self._sleep = sleep

    # --- synchronous ---------------------------------------------------------------------
    def run_sync(
        self,
        tenant_id: str,
        session_id: str,
        *,
        code: str,
        language: str | None,
        timeout_seconds: int | None,
        envs: dict[str, str],
    ) -> dict[str, Any]:
        """Run now and answer the response body; the finished execution is recorded and reported."""
        created_at = self._clock()
        bodies: list[dict[str, Any]] = []

        def record_of(report: ExecutionReport) -> ExecutionRecord:
            record = ExecutionRecord(
                execution_id=new_execution_id(created_at),
                tenant_id=tenant_id,
                mode=ExecutionMode.SYNC,
                source=ExecutionSource.API,
                state=ExecutionState.RUNNING,
                created_at=created_at,
                session_id=session_id,
                language=report.language.value,
                started_at=created_at,
            )
            bodies.append(_response_body(record, report.language.value, report.outcome, report.duration_ms))
            return self._with_result(record, bodies[-1], report.outcome.status)

        # The record is written with the lease's release and the usage, in one round trip.
        report = self._executions.execute(
            tenant_id,
            session_id,
            code=code,
            language=language,
            timeout_seconds=timeout_seconds,
            envs=envs,
            record_as=record_of,
        )
        finished = report.record
        if finished is None:  # an execution service without a finisher: the record on its own
            finished = record_of(report)
            if not self._records.put_new(finished):
                raise InvalidRequest("execution id collision; retry")  # 2^64 random ids: never in practice
        self._publish(finished)
        return bodies[-1]

    def replay_sync(self, tenant_id: str, execution_id: str) -> dict[str, Any]:
        """The body a synchronous execute answered (an Idempotency-Key replay), however large."""
        record = self.get(tenant_id, execution_id)
        if record.result is not None:
            return record.result
        if record.result_key is not None and self._results is not None:
            return dict(json.loads(self._results.get(record.result_key)))
        raise ExecutionNotFound(f"execution '{execution_id}' has no stored result")

    # --- asynchronous: accepted over HTTP ------------------------------------------------
    def submit(
        self,
        tenant_id: str,
        *,
        session_id: str | None,
        environment: str | None,
        code: str,
        language: str | None,
        timeout_seconds: int | None,
        envs: dict[str, str],
        callback_url: str | None,
    ) -> ExecutionRecord:
        """Queue an execution for the worker: in a session of the caller's, or in a one-off session
        of `environment`. Everything that can be refused now is refused now (400, 404, 429)."""
        self._executions.check_request(tenant_id, code, timeout_seconds, self._executions.async_budget())
        if callback_url is not None:
            self._check_callback_url(callback_url)
        ports = self._require_async()  # after the checks: a bad request is a 400 wherever it is sent
        if session_id is not None:
            self._sessions.require_usable(tenant_id, session_id)  # 404/410 now, not in an event later
        else:
            assert environment is not None  # the request model asks for exactly one
            self._catalogue.resolve(environment, None)
        now = self._clock()
        record = ExecutionRecord(
            execution_id=new_execution_id(now),
            tenant_id=tenant_id,
            mode=ExecutionMode.ASYNC,
            source=ExecutionSource.API,
            state=ExecutionState.QUEUED,
            created_at=now,
            session_id=session_id,
            environment=environment,
            language=language,
            callback_url=callback_url,
        )
        record = self._with_pending(record, PendingRun(code, language, timeout_seconds, dict(envs)))
        if not self._records.put_new(record):
            raise InvalidRequest("execution id collision; retry")
        try:
            ports.queue.enqueue(record.execution_id, tenant_id)
        except DomainError as exc:
            # Never leave a queued record no worker will see: it ends failed, and the caller retries.
            self._finish(record, failure=Failure(exc.code, "the execution could not be queued"))
            raise
        return record

    # --- asynchronous: the worker ---------------------------------------------------------
    def accept_message(
        self, message: ExecutionRequestedMessage, source: ExecutionSource, dedupe_key: str
    ) -> str:
        """A direct producer's ExecutionRequested: record it (once per dedupe key) and run it.

        Its tenant must exist: a message names one, and nothing else vouches for it. An unknown or
        foreign session is not the message's fault: the execution ends `failed` and is reported.
        """
        if self._tenants is not None and not self._tenants.tenant_exists(message.tenant_id):
            raise InvalidMessage("tenant_id names no tenant of this deployment")
        now = self._clock()
        record = ExecutionRecord(
            execution_id=execution_id_for_message(message.tenant_id, dedupe_key),
            tenant_id=message.tenant_id,
            mode=ExecutionMode.ASYNC,
            source=source,
            state=ExecutionState.QUEUED,
            created_at=now,
            session_id=message.session_id,
            environment=message.environment,
            language=message.language,
            callback_url=message.callback_url,
        )
        try:
            if message.callback_url is not None:
                self._check_callback_url(message.callback_url)
            self._executions.check_request(
                message.tenant_id, message.code, message.timeout_seconds, self._executions.async_budget()
            )
        except DomainError as refused:
            if self._records.put_new(record):
                self._finish(record, failure=Failure(refused.code, str(refused)))
            return record.execution_id
        pending = PendingRun(message.code, message.language, message.timeout_seconds, dict(message.envs))
        if not self._records.put_new(self._with_pending(record, pending)):
            # A redelivery, or the same idempotency_key again. Its execution runs once: run_queued
            # starts it only if it is still queued (a first delivery that died before starting it).
            logger.info("duplicate message", extra={"execution_id": record.execution_id})
        self.run_queued(message.tenant_id, record.execution_id)
        return record.execution_id

    def run_queued(self, tenant_id: str, execution_id: str) -> ExecutionRecord | None:
        """Run a queued execution once; any other state means another delivery has it (or had it)."""
        record = self._records.get(tenant_id, execution_id)
        if record is None:
            logger.warning("queued execution not found", extra={"execution_id": execution_id})
            return None
        if record.state == ExecutionState.RUNNING and self._lease_lapsed(record):
            # Its worker died mid-run: report it rather than run the code a second time.
            return self._finish(record, failure=Failure("worker_lost", "the worker running it stopped"))
        if record.state != ExecutionState.QUEUED:
            return None
        started = self._records.start(record, self._clock())
        if started is None:
            return None
        return self._run(started)

    def _run(self, record: ExecutionRecord) -> ExecutionRecord | None:
        pending = self._load_pending(record)
        session_id = record.session_id
        one_off = None
        try:
            if record.one_off:
                assert record.environment is not None
                one_off = self._sessions.create(
                    record.tenant_id,
                    agent=ONE_OFF_AGENT,
                    environment=record.environment,
                    provider=None,
                    timeout_seconds=None,
                    metadata={"execution_id": record.execution_id},
                    envs={},
                )
                session_id = one_off.session_id
            assert session_id is not None
            report = self._execute_when_free(record.tenant_id, session_id, pending)
        except DomainError as failed:
            return self._finish(
                replace(record, session_id=session_id), failure=Failure(failed.code, str(failed))
            )
        finally:
            if one_off is not None:
                self._close_quietly(record.tenant_id, one_off.session_id)
        ran = replace(record, session_id=session_id, language=report.language.value)
        body = _response_body(ran, report.language.value, report.outcome, report.duration_ms)
        return self._finish(ran, body=body, outcome=report.outcome.status)

    def _execute_when_free(self, tenant_id: str, session_id: str, pending: PendingRun) -> ExecutionReport:
        """Queued executions of one session run one after another: while another holds the
        session, wait (up to BUSY_WAIT_SECONDS) instead of failing on what a caller queued."""
        deadline = self._clock() + BUSY_WAIT_SECONDS
        while True:
            try:
                return self._executions.execute(
                    tenant_id,
                    session_id,
                    code=pending.code,
                    language=pending.language,
                    timeout_seconds=pending.timeout_seconds,
                    envs=pending.envs,
                    budget=self._executions.async_budget(),
                )
            except SessionBusy:
                if self._clock() >= deadline:
                    raise
                self._sleep(BUSY_POLL_SECONDS)

    # --- reading -------------------------------------------------------------------------
    def get(self, tenant_id: str, execution_id: str) -> ExecutionRecord:
        record = self._records.get(tenant_id, execution_id)
        if record is None:
            # Another tenant's execution answers exactly like a missing one.
            raise ExecutionNotFound(f"execution '{execution_id}' not found")
        return record

    def view(self, tenant_id: str, execution_id: str) -> ExecutionView:
        record = self.get(tenant_id, execution_id)
        if record.result_key is None or self._results is None:
            return ExecutionView(record, record.result)
        url, expires_at = self._results.url(record.result_key)
        return ExecutionView(record, None, url, expires_at)

    def list_for_session(
        self, tenant_id: str, session_id: str, limit: int, page_token: str | None
    ) -> ExecutionPage:
        self._sessions.get(tenant_id, session_id)  # 404 for a session the caller does not own
        return self._records.list_for_session(tenant_id, session_id, limit, page_token)

    # --- internals -----------------------------------------------------------------------
    def _require_async(self) -> AsyncPorts:
        if self._async is None:
            raise AsyncUnavailable("async executions are not configured in this deployment")
        return self._async

    def _with_pending(self, record: ExecutionRecord, pending: PendingRun) -> ExecutionRecord:
        size = len(pending.code.encode("utf-8", errors="surrogatepass"))
        if size <= INLINE_PENDING_MAX_BYTES or self._results is None:
            return replace(record, pending=pending)
        key = f"requests/{record.tenant_id}/{record.execution_id}.json"
        payload = {
            "code": pending.code,
            "language": pending.language,
            "timeout_seconds": pending.timeout_seconds,
        }
        self._results.put(key, json.dumps({**payload, "envs": pending.envs}).encode())
        return replace(record, pending_key=key)

    def _load_pending(self, record: ExecutionRecord) -> PendingRun:
        if record.pending is not None:
            return record.pending
        if record.pending_key is None or self._results is None:
            raise InvalidMessage(f"execution '{record.execution_id}' has nothing to run")
        stored = json.loads(self._results.get(record.pending_key))
        return PendingRun(stored["code"], stored["language"], stored["timeout_seconds"], stored["envs"])

    def _lease_lapsed(self, record: ExecutionRecord) -> bool:
        timeout = (record.pending.timeout_seconds if record.pending else None) or (
            self._settings.async_execution_timeout_max_seconds
        )
        started = record.started_at or record.created_at
        return self._clock() > started + timeout + WORKER_MARGIN_SECONDS

    def _with_result(
        self, record: ExecutionRecord, body: dict[str, Any], outcome: ExecutionStatus
    ) -> ExecutionRecord:
        encoded = json.dumps(body, separators=(",", ":")).encode()
        finished = replace(
            record,
            state=_state_of(outcome),
            finished_at=self._clock(),
            result_bytes=len(encoded),
            pending=None,
        )
        if len(encoded) <= self._settings.inline_result_max_bytes:
            return replace(finished, result=body)
        if self._results is None:
            # No bucket (a deployment without async): the record keeps its size, not the body.
            return finished
        key = f"results/{record.tenant_id}/{record.execution_id}.json"
        self._results.put(key, encoded)
        return replace(finished, result_key=key)

    def _finish(
        self,
        record: ExecutionRecord,
        *,
        body: dict[str, Any] | None = None,
        outcome: ExecutionStatus | None = None,
        failure: Failure | None = None,
    ) -> ExecutionRecord | None:
        if body is not None and outcome is not None:
            finished = self._with_result(record, body, outcome)
        else:
            finished = replace(
                record, state=ExecutionState.FAILED, finished_at=self._clock(), failure=failure, pending=None
            )
        stored = self._records.finish(record, finished)
        if stored is None:
            return None  # another delivery finished it first
        if record.pending_key is not None and self._results is not None:
            self._forget_pending(record.pending_key)
        self._publish(stored)
        self._call_back(stored)
        return stored

    def _forget_pending(self, key: str) -> None:
        """The code and envs (often secrets) of a run are kept only until it has run."""
        assert self._results is not None
        try:
            self._results.delete(key)
        except DomainError:
            logger.warning("pending run not deleted; the bucket's lifecycle rule will", extra={"key": key})

    def _publish(self, record: ExecutionRecord) -> None:
        if self._async is not None and self._async.events is not None:
            self._async.events.finished(record)

    def _call_back(self, record: ExecutionRecord) -> None:
        ports = self._async
        if record.callback_url is None or ports is None or ports.callbacks is None or ports.secrets is None:
            return
        view = self.view(record.tenant_id, record.execution_id)
        body = json.dumps(execution_payload(view), separators=(",", ":")).encode()
        try:
            secret = ports.secrets.secret(record.tenant_id)
        except DomainError:
            logger.warning("callback secret unavailable", extra={"execution_id": record.execution_id})
            return
        report = ports.callbacks.deliver(record.callback_url, body, secret, record.execution_id)
        logger.info("callback", extra={"execution_id": record.execution_id, "callback_status": report.status})
        try:
            self._records.record_callback(record, {k: v for k, v in vars(report).items() if v is not None})
        except DomainError:
            logger.warning("callback report not stored", extra={"execution_id": record.execution_id})

    def _close_quietly(self, tenant_id: str, session_id: str) -> None:
        try:
            self._sessions.close(tenant_id, session_id)
        except DomainError:
            # The reaper ends it at its expiry; the sandbox dies with it.
            logger.warning("one-off session not closed", extra={"session_id": session_id})


def _state_of(outcome: ExecutionStatus) -> ExecutionState:
    if outcome == ExecutionStatus.OK:
        return ExecutionState.SUCCEEDED
    if outcome == ExecutionStatus.TIMEOUT:
        return ExecutionState.TIMED_OUT
    return ExecutionState.FAILED


def _response_body(
    record: ExecutionRecord, language: str, outcome: Any, duration_ms: float
) -> dict[str, Any]:
    assert record.session_id is not None
    response = ExecuteResponse.from_domain(record.session_id, language, outcome, duration_ms)
    return {**response.model_dump(mode="json"), "execution_id": record.execution_id}


def execution_payload(view: ExecutionView) -> dict[str, Any]:
    """GET /api/executions/{id}'s body, and a callback's."""
    record = view.record
    return {
        "execution_id": record.execution_id,
        "status": record.state.value,
        "mode": record.mode.value,
        "source": record.source.value,
        "session_id": record.session_id,
        "environment": record.environment,
        "language": record.language,
        "created_at": iso8601(record.created_at),
        "started_at": iso8601(record.started_at),
        "finished_at": iso8601(record.finished_at),
        "failure": {"code": record.failure.code, "message": record.failure.message}
        if record.failure
        else None,
        "result": view.result,
        "result_url": view.result_url,
        "result_url_expires_at": iso8601(view.result_url_expires_at),
        "result_bytes": record.result_bytes,
        "callback": record.callback,
    }
