"""E2BSandboxProvider: sessions' sandboxes on E2B through the sync `e2b-code-interpreter` SDK.

Lambda invocations are stateless, so every call finds its sandbox again by id; a warm container
keeps the connected `Sandbox` objects (and their HTTP connections) for the next invocation.
Every SDK exception is translated into a domain error here and nowhere else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import e2b
from aws_lambda_powertools import Logger
from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.models import Context

from sandbox_gateway.adapters.code_interpreter import outcome_from_execution, timed_out
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.errors import (
    DomainError,
    FileNotFound,
    InvalidFileOperation,
    PayloadTooLarge,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    SandboxDiskFull,
    SandboxGone,
)
from sandbox_gateway.models.execution import (
    CodeRun,
    ExecutionOutcome,
)
from sandbox_gateway.models.files import FileEntry, FileType
from sandbox_gateway.ports import SandboxRef, SandboxSpec

logger = Logger(child=True)

WORKSPACE = "/workspace"
# The code interpreter's own names for our languages.
_KERNEL_LANGUAGE = {Language.PYTHON: "python", Language.JAVASCRIPT: "javascript", Language.BASH: "bash"}
_KERNEL_ALIASES = {"js": "javascript", "node": "javascript", "sh": "bash", "python3": "python"}
_FILE_TYPES = {"file": FileType.FILE, "dir": FileType.DIRECTORY, "symlink": FileType.SYMLINK}
MAX_CACHED_SANDBOXES = 64
_GONE_MESSAGE = "the session's sandbox no longer exists (it expired or was killed)"


class E2BSandboxProvider:
    def __init__(
        self,
        api_key: Callable[[], str],
        *,
        request_timeout_seconds: float,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = api_key
        self._request_timeout = request_timeout_seconds
        self._urls = {k: v for k, v in (("api_url", api_url), ("sandbox_url", sandbox_url)) if v}
        self._clock = clock
        self._sandboxes: OrderedDict[str, Sandbox] = OrderedDict()
        self._contexts: dict[tuple[str, str], Context] = {}
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> str:
        env = spec.environment
        with _translated("create the sandbox"):
            sandbox = Sandbox.create(
                template=env.template,
                timeout=spec.timeout_seconds,
                metadata={"session_id": spec.session_id, "tenant_id": spec.tenant_id},
                envs=spec.envs or None,
                # E2B's default is internet on; ours is off unless the environment opts in.
                allow_internet_access=env.allow_internet_access,
                **self._opts(),
            )
        try:
            with _translated("prepare the sandbox workspace"):
                # Templates start in /home/user; the API promises /workspace as the working directory.
                sandbox.commands.run(
                    # Owned by the template's default user (E2B's is "user") where that user exists.
                    f"mkdir -p {WORKSPACE} && {{ ! id -u user >/dev/null 2>&1 || chown user:user {WORKSPACE}; }}",  # noqa: E501
                    user="root",
                    timeout=self._request_timeout,
                    request_timeout=self._request_timeout,
                )
                # The template's Python kernel is already running: moving it costs one cell,
                # where a new context would start a kernel (~0.7 s on the local host).
                moved = sandbox.run_code(
                    f"import os as _os; _os.chdir({WORKSPACE!r}); del _os",
                    language=_KERNEL_LANGUAGE[Language.PYTHON],
                    request_timeout=self._request_timeout,
                )
                if moved.error is not None:
                    raise ProviderError(f"could not enter {WORKSPACE}: {moved.error.name}")
                self._context(sandbox, env.default_language)
        except Exception:
            # Nothing leaks: a sandbox that never became a session's is killed at once.
            self._kill_quietly(sandbox)
            raise
        self._remember(sandbox)
        return str(sandbox.sandbox_id)

    def extend(self, ref: SandboxRef, timeout_seconds: int) -> None:
        with self._sandbox(ref, "extend the sandbox") as sandbox:
            sandbox.set_timeout(timeout_seconds, **self._opts())

    def kill(self, sandbox_id: str) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox_id, None)
            for key in [key for key in self._contexts if key[0] == sandbox_id]:
                del self._contexts[key]
        with _translated("kill the sandbox"):
            # False means E2B no longer has it: already gone is what we wanted.
            Sandbox.kill(sandbox_id, **self._opts())

    # --- code --------------------------------------------------------------------------------
    def execute(self, ref: SandboxRef, run: CodeRun) -> ExecutionOutcome:
        with self._sandbox(ref, "run code") as sandbox:
            context = self._context(sandbox, run.language)
            started = time.perf_counter()
            try:
                execution = sandbox.run_code(
                    run.code,
                    language=None if context else _KERNEL_LANGUAGE[run.language],
                    context=context,
                    envs=run.envs or None,
                    timeout=run.timeout_seconds,
                    request_timeout=self._request_timeout,
                )
            except e2b.TimeoutException as exc:
                if _is_execution_timeout(exc):
                    return timed_out(run.timeout_seconds, (time.perf_counter() - started) * 1000)
                raise
            elapsed_ms = (time.perf_counter() - started) * 1000
        return outcome_from_execution(execution, elapsed_ms)

    def _context(self, sandbox: Sandbox, language: Language) -> Context | None:
        """The session's context for a language, working in /workspace; created on first use.

        Python runs in the template's default context (None), moved to /workspace at create.
        """
        if language == Language.PYTHON:
            return None
        key = (str(sandbox.sandbox_id), _KERNEL_LANGUAGE[language])
        cached = self._contexts.get(key)
        if cached is not None:
            return cached
        wanted = _KERNEL_LANGUAGE[language]
        context = next(
            (
                ctx
                for ctx in sandbox.list_code_contexts()
                if _kernel_name(ctx.language) == wanted and ctx.cwd == WORKSPACE
            ),
            None,
        )
        if context is None:
            context = sandbox.create_code_context(
                cwd=WORKSPACE, language=wanted, request_timeout=self._request_timeout
            )
        self._contexts[key] = context
        return context

    # --- files -------------------------------------------------------------------------------
    def list_files(self, ref: SandboxRef, directory: str) -> list[FileEntry]:
        with self._sandbox(ref, "list files") as sandbox:
            entries = sandbox.files.list(directory, depth=1, request_timeout=self._request_timeout)
        return [_file_entry(entry) for entry in entries]

    def read_file(self, ref: SandboxRef, path: str, max_bytes: int) -> bytes:
        with self._sandbox(ref, "read the file") as sandbox:
            info = sandbox.files.get_info(path, request_timeout=self._request_timeout)
            entry = _file_entry(info)
            if entry.type == FileType.DIRECTORY:
                raise InvalidFileOperation(f"{path} is a directory; list it instead")
            if entry.size is not None and entry.size > max_bytes:
                raise PayloadTooLarge(f"{path} is {entry.size} bytes; the limit is {max_bytes}")
            data = sandbox.files.read(path, format="bytes", request_timeout=self._request_timeout)
        if len(data) > max_bytes:  # it grew between the two calls
            raise PayloadTooLarge(f"{path} is larger than the limit of {max_bytes} bytes")
        return bytes(data)

    def write_file(self, ref: SandboxRef, path: str, data: bytes) -> FileEntry:
        with self._sandbox(ref, "write the file") as sandbox:
            info = sandbox.files.write(path, data, request_timeout=self._request_timeout)
        return FileEntry(name=info.name, path=info.path, type=FileType.FILE, size=len(data))

    def delete_file(self, ref: SandboxRef, path: str) -> None:
        with self._sandbox(ref, "delete the file") as sandbox:
            sandbox.files.remove(path, request_timeout=self._request_timeout)

    # --- connections ---------------------------------------------------------------------
    @contextmanager
    def _sandbox(self, ref: SandboxRef, action: str) -> Iterator[Sandbox]:
        with _translated(action):
            sandbox = self._connected(ref)
            try:
                yield sandbox
            except (e2b.SandboxNotFoundException, e2b.SandboxNotRunningException):
                self._forget(ref.sandbox_id)
                raise
            except e2b.TimeoutException as exc:
                # The code interpreter reports a vanished sandbox as a timeout (a 502 from the
                # edge); only asking envd whether the sandbox still runs tells the two apart.
                if not self._still_running(sandbox):
                    self._forget(ref.sandbox_id)
                    raise SandboxGone(_GONE_MESSAGE) from exc
                raise

    def _connected(self, ref: SandboxRef) -> Sandbox:
        with self._lock:
            sandbox = self._sandboxes.get(ref.sandbox_id)
            if sandbox is not None:
                self._sandboxes.move_to_end(ref.sandbox_id)
                return sandbox
        # connect() only lengthens a running sandbox's timeout, never shortens it.
        remaining = max(1, ref.expires_at - int(self._clock()))
        sandbox = Sandbox.connect(ref.sandbox_id, timeout=remaining, **self._opts())
        self._remember(sandbox)
        return sandbox

    def _still_running(self, sandbox: Sandbox) -> bool:
        try:
            return bool(sandbox.is_running(request_timeout=self._request_timeout))
        except Exception:
            return True  # unknown: do not declare a session lost on a failed probe

    def _remember(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._sandboxes[str(sandbox.sandbox_id)] = sandbox
            while len(self._sandboxes) > MAX_CACHED_SANDBOXES:
                evicted, _ = self._sandboxes.popitem(last=False)
                for key in [key for key in self._contexts if key[0] == evicted]:
                    del self._contexts[key]

    def _forget(self, sandbox_id: str) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox_id, None)

    def _kill_quietly(self, sandbox: Sandbox) -> None:
        try:
            sandbox.kill(**self._opts())
        except Exception:
            logger.exception("could not kill a sandbox after a failed create")

    def _opts(self) -> dict[str, Any]:
        # One retry at most: with the SDK's default of three, backoff alone could outlast the
        # 29 s the function has before API Gateway gives up.
        return {
            "api_key": self._api_key(),
            "request_timeout": self._request_timeout,
            "retries": 1,
            **self._urls,
        }


def _kernel_name(language: str | None) -> str:
    name = (language or "python").lower()
    return _KERNEL_ALIASES.get(name, name)


def _is_execution_timeout(exc: e2b.TimeoutException) -> bool:
    # The SDK raises the same class for "the code ran too long" (a read timeout on the
    # execution stream) and for "the sandbox did not answer"; only its message tells them apart.
    return not isinstance(exc, e2b.SandboxNotRunningException | e2b.SandboxUnreachableException) and (
        "Execution timed out" in str(exc)
    )


def _file_entry(info: Any) -> FileEntry:
    kind = getattr(info.type, "value", info.type)
    modified = getattr(info, "modified_time", None)
    size = getattr(info, "size", None)
    file_type = FileType.SYMLINK if getattr(info, "symlink_target", None) else _FILE_TYPES.get(str(kind))
    return FileEntry(
        name=info.name,
        path=info.path,
        type=file_type or FileType.OTHER,
        size=int(size) if size is not None and kind != "dir" else None,
        modified_at=modified.isoformat() if modified is not None else None,
    )


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn whatever the SDK raises into the domain error a caller can act on."""
    try:
        yield
    except DomainError:
        raise
    except Exception as exc:
        error = _domain_error(exc, action)
        logger.warning(
            "E2B call failed", extra={"action": action, "sdk_error": type(exc).__name__, "code": error.code}
        )
        raise error from exc


def _domain_error(exc: Exception, action: str) -> DomainError:  # noqa: PLR0911 - one table
    match exc:
        case e2b.SandboxNotFoundException() | e2b.SandboxNotRunningException():
            return SandboxGone(_GONE_MESSAGE)
        case e2b.FileNotFoundException():
            return FileNotFound(_sdk_message(exc, "no such file or directory"))
        case e2b.InvalidArgumentException():
            return InvalidFileOperation(_sdk_message(exc, f"E2B refused to {action}"))
        case e2b.NotEnoughSpaceException():
            return SandboxDiskFull("the sandbox's disk is full")
        case e2b.AuthenticationException():
            return ProviderUnavailable("E2B rejected the service's API key")
        case e2b.RateLimitException() | e2b.ServiceBusyException():
            return ProviderUnavailable("E2B is rate limiting or busy; retry shortly", retry_after_seconds=5)
        case e2b.TimeoutException():
            return ProviderTimeout(f"E2B did not answer in time while trying to {action}")
        case e2b.SandboxException():
            return ProviderError(f"E2B failed to {action}")
        case _:
            # Transport errors (connection refused, reset) come from httpx or pyqwest.
            return ProviderUnavailable(f"E2B could not be reached to {action}")


def _sdk_message(exc: Exception, fallback: str) -> str:
    text = str(exc).strip()
    # The SDK's messages name sandbox paths, never our internals; keep them short.
    return text[:300] if text else fallback
