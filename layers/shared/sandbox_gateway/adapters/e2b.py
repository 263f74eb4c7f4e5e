"""E2BSandboxProvider: sessions' sandboxes on E2B through the sync `e2b-code-interpreter` SDK.

Lambda invocations are stateless, so every call finds its sandbox again by id; a warm container
keeps the connected `Sandbox` objects (and their HTTP connections) for the next invocation.
Every SDK exception is translated into a domain error here and nowhere else.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import e2b
import httpx
from aws_lambda_powertools import Logger
from e2b import ConnectionConfig
from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.models import Context, OutputMessage
from packaging.version import Version

from sandbox_gateway.adapters.code_interpreter import outcome_from_execution, timed_out
from sandbox_gateway.models.environment import Environment, Language
from sandbox_gateway.models.errors import (
    DomainError,
    FileNotFound,
    InvalidFileOperation,
    InvalidFilePath,
    InvalidRequest,
    PayloadTooLarge,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    SandboxDiskFull,
    SandboxGone,
)
from sandbox_gateway.models.execution import (
    CodeRun,
    ExecutionErrorInfo,
    ExecutionOutcome,
    ExecutionStatus,
)
from sandbox_gateway.models.files import FileEntry, FileType
from sandbox_gateway.ports import CreatedSandbox, PooledSandbox, SandboxRef, SandboxSpec, Sealer

logger = Logger(child=True)

DEFAULT_WORKSPACE = "/workspace"
# The code interpreter's own names for our languages.
_KERNEL_LANGUAGE = {
    Language.PYTHON: "python",
    Language.JAVASCRIPT: "javascript",
    Language.TYPESCRIPT: "typescript",
    Language.BASH: "bash",
}
_KERNEL_ALIASES = {"js": "javascript", "node": "javascript", "sh": "bash", "python3": "python"}
_FILE_TYPES = {"file": FileType.FILE, "dir": FileType.DIRECTORY, "symlink": FileType.SYMLINK}
MAX_CACHED_SANDBOXES = 64
_GONE_MESSAGE = "the session's sandbox no longer exists (it expired or was killed)"
# Output kept from one execution (JSON-escaped bytes, as sent): more than any response holds.
# A cell printing more is stopped, as the SDK keeps every line it receives in memory.
DEFAULT_OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024
# After an abandoned cell: how long an empty cell may wait for the kernel before the cell is
# taken to ignore its interrupt and the context is restarted.
BUSY_PROBE_SECONDS = 1.5


class _OutputLimitReached(Exception):
    """Raised from an output callback to end the execution stream (the server then interrupts)."""


def _deadline_factor() -> float:
    """How the SDK's transport stretches run_code's `timeout=` into its whole-request deadline.

    pyqwest takes the sum of httpx's read and write timeouts as one deadline, so `timeout=5`
    answers after 10 s; dividing by this factor makes the deadline the caller's limit.
    """
    try:
        from pyqwest.httpx._transport import convert_timeout  # noqa: PLC0415 - private, may move

        probe = convert_timeout({"timeout": httpx.Timeout(1.0, connect=1.0).as_dict()})
    except Exception:
        return 1.0
    return float(probe) if probe and probe >= 1.0 else 1.0


_DEADLINE_FACTOR = _deadline_factor()


def _sdk_timeout(seconds: float) -> float:
    """The `timeout=` for run_code whose deadline is `seconds`."""
    return seconds / _DEADLINE_FACTOR


class _Output:
    """stdout and stderr as they stream in, so a cell cut short still returns what it printed."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0
        self.truncated = False
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def on_stdout(self, message: OutputMessage) -> None:
        self._take(self.stdout, message.line)

    def on_stderr(self, message: OutputMessage) -> None:
        self._take(self.stderr, message.line)

    def _take(self, into: list[str], text: str) -> None:
        size = len(json.dumps(text)) - 2
        if self.used + size > self.limit:
            low, high = 0, min(len(text), self.limit - self.used)
            while low < high:  # the longest head that fits, in escaped bytes
                middle = (low + high + 1) // 2
                if len(json.dumps(text[:middle])) - 2 <= self.limit - self.used:
                    low = middle
                else:
                    high = middle - 1
            into.append(text[:low])
            self.used = self.limit
            self.truncated = True
            raise _OutputLimitReached
        self.used += size
        into.append(text)

    def outcome(
        self, status: ExecutionStatus, error: ExecutionErrorInfo, elapsed_ms: float
    ) -> ExecutionOutcome:
        return ExecutionOutcome(
            status=status,
            stdout="".join(self.stdout),
            stderr="".join(self.stderr),
            error=error,
            truncated=self.truncated,
            sandbox_duration_ms=elapsed_ms,
        )


class E2BSandboxProvider:
    def __init__(
        self,
        api_key: Callable[[], str],
        *,
        request_timeout_seconds: float,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        clock: Callable[[], float] = time.time,
        output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT_BYTES,
        workspace: str = DEFAULT_WORKSPACE,
        sealer: Sealer | None = None,
    ) -> None:
        self._api_key = api_key
        # Seals each sandbox's envd access for its session, so any container reaches it later
        # without E2B's control plane (no `connect`); None: connect once per container.
        self._sealer = sealer
        self._workspace = workspace  # where code runs and relative paths resolve
        self._output_limit = output_limit_bytes
        self._request_timeout = request_timeout_seconds
        self._urls = {k: v for k, v in (("api_url", api_url), ("sandbox_url", sandbox_url)) if v}
        self._clock = clock
        self._sandboxes: OrderedDict[str, Sandbox] = OrderedDict()
        self._contexts: dict[tuple[str, str], Context] = {}
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> CreatedSandbox:
        metadata = {"session_id": spec.session_id, "tenant_id": spec.tenant_id}
        sandbox = self._started(spec.environment, spec.timeout_seconds, metadata, spec.envs)
        try:
            access = self._seal_access(sandbox)
        except Exception:
            self._kill_quietly(sandbox)
            raise
        self._remember(sandbox)
        return CreatedSandbox(str(sandbox.sandbox_id), access)

    def boot(self, environment: Environment, timeout_seconds: int) -> CreatedSandbox:
        """For the warm pool: started and prepared like a session's, with its sealed access."""
        sandbox = self._started(environment, timeout_seconds, {"pool": environment.name}, {})
        try:
            access = self._seal_access(sandbox)
        except Exception:
            self._kill_quietly(sandbox)
            raise
        return CreatedSandbox(str(sandbox.sandbox_id), access)

    def bound_as(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        return CreatedSandbox(pooled.sandbox_id, pooled.access)

    def bind(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        """The session's lifetime starts now: one control-plane call. Its sealed access, bound to the
        sandbox, becomes the session's as it is (no KMS call)."""
        with _translated("bind the sandbox"):
            Sandbox.set_timeout(pooled.sandbox_id, spec.timeout_seconds, **self._opts())
        return self.bound_as(pooled, spec)

    def _started(
        self, env: Environment, timeout_seconds: int, metadata: dict[str, str], envs: dict[str, str]
    ) -> Sandbox:
        """A new sandbox working in the workspace with its default kernel warm; killed on failure."""
        with _translated("create the sandbox"):
            sandbox = Sandbox.create(
                template=env.template,
                timeout=timeout_seconds,
                metadata=metadata,
                envs=envs or None,
                # E2B's default is internet on; ours is off unless the environment opts in.
                allow_internet_access=env.allow_internet_access,
                **self._opts(),
            )
        try:
            with _translated("prepare the sandbox workspace"):
                # Templates start in /home/user; the API promises its workspace as the working directory.
                sandbox.commands.run(
                    # Owned by the template's default user (E2B's is "user") where that user exists.
                    f"mkdir -p {self._workspace} && "
                    f"{{ ! id -u user >/dev/null 2>&1 || chown user:user {self._workspace}; }}",
                    user="root",
                    timeout=self._request_timeout,
                    request_timeout=self._request_timeout,
                )
                # The template's Python kernel is already running: moving it costs one cell,
                # where a new context would start a kernel (~0.7 s on the local host).
                moved = sandbox.run_code(
                    f"import os as _os; _os.chdir({self._workspace!r}); del _os",
                    language=_KERNEL_LANGUAGE[Language.PYTHON],
                    request_timeout=self._request_timeout,
                )
                if moved.error is not None:
                    raise ProviderError(f"could not enter {self._workspace}: {moved.error.name}")
                self._context(sandbox, env.default_language)
        except Exception:
            # Nothing leaks: a sandbox that never became a session's is killed at once.
            self._kill_quietly(sandbox)
            raise
        return sandbox

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
        """Run a cell; at `timeout_seconds` the SDK drops the stream, the server interrupts the
        cell, and what it printed so far comes back as a `timeout` outcome."""
        with self._sandbox(ref, "run code") as sandbox:
            context = self._context(sandbox, run.language)
            output = _Output(self._output_limit)
            started = time.perf_counter()
            try:
                execution = sandbox.run_code(
                    run.code,
                    language=None if context else _KERNEL_LANGUAGE[run.language],
                    context=context,
                    envs=run.envs or None,
                    on_stdout=output.on_stdout,
                    on_stderr=output.on_stderr,
                    timeout=_sdk_timeout(run.timeout_seconds),
                    request_timeout=self._request_timeout,
                )
            except _OutputLimitReached:
                elapsed_ms = (time.perf_counter() - started) * 1000
                self._note(output, self._free_kernel(sandbox, context, run.language))
                error = ExecutionErrorInfo(
                    name="OutputLimitExceeded",
                    value=f"the cell printed more than {self._output_limit} bytes and was interrupted",
                    traceback="",
                )
                return output.outcome(ExecutionStatus.ERROR, error, elapsed_ms)
            except e2b.TimeoutException as exc:
                if not _is_execution_timeout(exc):
                    raise
                elapsed_ms = (time.perf_counter() - started) * 1000
                self._note(output, self._free_kernel(sandbox, context, run.language))
                partial = output.outcome(ExecutionStatus.TIMEOUT, _NO_ERROR, elapsed_ms)
                return timed_out(run.timeout_seconds, elapsed_ms, partial)
            elapsed_ms = (time.perf_counter() - started) * 1000
        return outcome_from_execution(execution, elapsed_ms)

    def _free_kernel(self, sandbox: Sandbox, context: Context | None, language: Language) -> str | None:
        """Make sure an abandoned cell no longer holds its kernel.

        The code interpreter interrupts a cell whose client went away; a cell that ignores the
        interrupt keeps its kernel busy, and only restarting the context stops it. An empty
        cell tells the two apart. Returns a note for the caller when state was lost.
        """
        try:
            sandbox.run_code(
                "",
                language=None if context else _KERNEL_LANGUAGE[language],
                context=context,
                timeout=_sdk_timeout(BUSY_PROBE_SECONDS),
                request_timeout=self._request_timeout,
            )
            return None
        except e2b.TimeoutException as exc:
            if not _is_execution_timeout(exc):
                logger.warning("could not probe the kernel after a timeout", extra={"sdk_error": str(exc)})
                return None
        except Exception as exc:
            logger.warning(
                "could not probe the kernel after a timeout", extra={"sdk_error": type(exc).__name__}
            )
            return None
        name = _KERNEL_LANGUAGE[language]
        try:
            target = context or next(
                (c for c in sandbox.list_code_contexts() if _kernel_name(c.language) == name), None
            )
            if target is None:
                return f"[the cell ignored the interrupt and the {name} kernel could not be restarted]"
            sandbox.restart_code_context(target)
            if context is None:  # the template's default context starts outside the workspace
                sandbox.run_code(
                    f"import os as _os; _os.chdir({self._workspace!r}); del _os",
                    context=target,
                    request_timeout=self._request_timeout,
                )
        except Exception as exc:
            logger.warning("could not restart a busy context", extra={"sdk_error": type(exc).__name__})
            return f"[the cell ignored the interrupt and the {name} kernel could not be restarted]"
        return f"[the cell ignored the interrupt: the {name} kernel was restarted and its state is lost]"

    @staticmethod
    def _note(output: _Output, note: str | None) -> None:
        if note:
            output.stderr.append(("\n" if output.stderr else "") + note + "\n")

    def _context(self, sandbox: Sandbox, language: Language) -> Context | None:
        """The session's context for a language, working in the workspace; created on first use.

        Python runs in the template's default context (None), moved to the workspace at create.
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
                if _kernel_name(ctx.language) == wanted and ctx.cwd == self._workspace
            ),
            None,
        )
        if context is None:
            context = sandbox.create_code_context(
                cwd=self._workspace, language=wanted, request_timeout=self._request_timeout
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
        sandbox = self._reopened(ref)
        if sandbox is None:
            # connect() only lengthens a running sandbox's timeout, never shortens it.
            remaining = max(1, ref.expires_at - int(self._clock()))
            sandbox = Sandbox.connect(ref.sandbox_id, timeout=remaining, **self._opts())
        self._remember(sandbox)
        return sandbox

    # --- direct access (no control plane) --------------------------------------------------
    def _seal_access(self, sandbox: Sandbox) -> str | None:
        """What `connect` would fetch again, sealed for this sandbox: domain, envd version, tokens."""
        if self._sealer is None:
            return None
        access = {
            "domain": sandbox.sandbox_domain,
            # The SDK keeps these two behind underscores but takes them in its constructor.
            "envd_version": str(sandbox._envd_version),
            "envd_access_token": sandbox._envd_access_token,
            "traffic_access_token": sandbox.traffic_access_token,
        }
        plaintext = json.dumps(access, separators=(",", ":")).encode()
        return self._sealer.seal(plaintext, _access_context(str(sandbox.sandbox_id)))

    def _reopened(self, ref: SandboxRef) -> Sandbox | None:
        """The session's sandbox built from its sealed access, as `connect` would, minus the call.

        None (then the caller connects) when there is none or it does not open: a key problem
        must cost a control-plane call, not the session."""
        if ref.access is None or self._sealer is None:
            return None
        try:
            access = json.loads(self._sealer.open(ref.access, _access_context(ref.sandbox_id)))
            version = Version(access["envd_version"])
        except (ProviderError, ValueError, KeyError, TypeError):  # ValueError: bad JSON, bad version
            logger.warning("could not open a session's sealed sandbox access; connecting instead")
            return None
        token = access.get("envd_access_token")
        headers = {"E2b-Sandbox-Id": ref.sandbox_id, "E2b-Sandbox-Port": str(ConnectionConfig.envd_port)}
        if token:
            headers["X-Access-Token"] = token
        return Sandbox(
            sandbox_id=ref.sandbox_id,
            sandbox_domain=access.get("domain"),
            envd_version=version,
            envd_access_token=token,
            traffic_access_token=access.get("traffic_access_token"),
            connection_config=ConnectionConfig(extra_sandbox_headers=headers, **self._opts()),
        )

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


_NO_ERROR = ExecutionErrorInfo(name="", value="", traceback="")


def _access_context(sandbox_id: str) -> dict[str, str]:
    """Sealed access opens only for the sandbox it was sealed for: copied to an item that names
    another sandbox, it opens nowhere. (Not bound to a session: a pooled sandbox's access, sealed
    at boot, becomes its session's as it is.)"""
    return {"sandbox_id": sandbox_id}


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


_FILE_ACTIONS = frozenset({"list files", "read the file", "write the file", "delete the file"})
# A status the SDK leaves in the message ("403: …", "Code.PERMISSION_DENIED: …").
_STATUS_PREFIX = re.compile(r"^\s*(\d{3}|Code\.[A-Z_]+)\s*:")
_PATH_REFUSED = frozenset(
    {"400", "403", "422", "Code.INVALID_ARGUMENT", "Code.PERMISSION_DENIED", "Code.OUT_OF_RANGE"}
)
_PATH_MISSING = frozenset({"404", "Code.NOT_FOUND"})
_PATH_CONFLICT = frozenset({"409", "Code.ALREADY_EXISTS", "Code.FAILED_PRECONDITION"})


def _file_refusal(exc: Exception, action: str) -> DomainError | None:  # noqa: PLR0911 - a table
    """A provider's refusal of a path is the caller's error (4xx), never a provider failure."""
    if action not in _FILE_ACTIONS or not isinstance(exc, e2b.SandboxException):
        return None
    if isinstance(
        exc,
        e2b.SandboxNotFoundException
        | e2b.TimeoutException
        | e2b.RateLimitException
        | e2b.NotEnoughSpaceException,
    ):
        return None  # the sandbox or the service, not the path
    if isinstance(exc, e2b.NotFoundException):
        return FileNotFound(_sdk_message(exc, "no such file or directory"))
    match = _STATUS_PREFIX.match(str(exc))
    status = match.group(1) if match else None
    if status in _PATH_REFUSED:
        return InvalidFilePath(_sdk_message(exc, f"the sandbox refused the path while trying to {action}"))
    if status in _PATH_MISSING:
        return FileNotFound(_sdk_message(exc, "no such file or directory"))
    if status in _PATH_CONFLICT:
        return InvalidFileOperation(_sdk_message(exc, f"the path does not allow this: could not {action}"))
    return None


def _domain_error(exc: Exception, action: str) -> DomainError:  # noqa: PLR0911 - one table
    refusal = _file_refusal(exc, action)
    if refusal is not None:
        return refusal
    match exc:
        case e2b.SandboxNotFoundException() | e2b.SandboxNotRunningException():
            return SandboxGone(_GONE_MESSAGE)
        case e2b.FileNotFoundException():
            return FileNotFound(_sdk_message(exc, "no such file or directory"))
        case e2b.InvalidArgumentException():
            return InvalidFileOperation(_sdk_message(exc, f"E2B refused to {action}"))
        case UnicodeError():
            # Text that cannot be encoded (a lone surrogate) is the caller's, not an outage.
            return InvalidRequest("the request contains text that is not valid Unicode (a lone surrogate?)")
        case e2b.NotEnoughSpaceException():
            return SandboxDiskFull("the sandbox's disk is full")
        case e2b.AuthenticationException():
            return ProviderUnavailable("E2B rejected the service's API key")
        case e2b.RateLimitException() | e2b.ServiceBusyException():
            return ProviderUnavailable("E2B is rate limiting or busy; retry shortly", retry_after_seconds=5)
        case e2b.TimeoutException() | httpx.TimeoutException():  # the SDK lets httpx's own through
            return ProviderTimeout(f"E2B did not answer in time while trying to {action}")
        case e2b.SandboxException():
            return ProviderError(f"E2B failed to {action}")
        case _:
            # Transport errors (connection refused, reset) come from httpx or pyqwest.
            return ProviderUnavailable(f"E2B could not be reached to {action}")


# Absolute paths in provider text: the caller's own (/workspace, /home/user) are kept, any
# other may be the host's (the local host's sandbox trees) and is replaced.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s'\"`()<>,;]*")
_CALLER_ROOTS = ("/workspace", "/home/user")
# Sandbox ids (about 20 lower-case alphanumerics with digits, e.g. "i33a6ea98b0e05a4e5dcd").
_SANDBOX_ID = re.compile(r"\b(?=[a-z0-9]*\d)[a-z0-9]{16,32}\b")


def _scrub(text: str) -> str:
    def path(match: re.Match[str]) -> str:
        value = match.group(0)
        caller = any(value == root or value.startswith(root + "/") for root in _CALLER_ROOTS)
        return value if caller and not _SANDBOX_ID.search(value) else "<path>"

    text = _STATUS_PREFIX.sub("", text, count=1).strip()
    return _SANDBOX_ID.sub("<sandbox>", _ABSOLUTE_PATH.sub(path, text))


def _sdk_message(exc: Exception, fallback: str) -> str:
    """The SDK's message for the caller: no host paths, no sandbox ids, short."""
    text = _scrub(str(exc))
    return text[:300] if text else fallback
