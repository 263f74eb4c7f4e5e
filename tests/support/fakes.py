"""FakeSandboxProvider: an in-memory provider with failure switches, for services and handlers.

It keeps a small filesystem per sandbox and "runs" code by a tiny rule set, enough to see that
the service passes the right things through. Everything else behaves as the real providers do
(errors of the same class and code, directories, unknown templates, timeouts): it runs through
the same contract suite (tests/contract) as E2B and Docker, minus the tests that need a real
interpreter, so it cannot drift from them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sandbox_gateway.adapters.code_interpreter import timed_out
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Environment
from sandbox_gateway.models.errors import (
    DomainError,
    FileNotFound,
    InvalidFileOperation,
    PayloadTooLarge,
    ProviderError,
    SandboxGone,
)
from sandbox_gateway.models.execution import CodeRun, ExecutionErrorInfo, ExecutionOutcome, ExecutionStatus
from sandbox_gateway.models.files import FileEntry, FileType
from sandbox_gateway.ports import CreatedSandbox, PooledSandbox, SandboxRef, SandboxSpec

KNOWN_TEMPLATES = frozenset(env.template for env in BUILT_IN_ENVIRONMENTS)
ROOT_DIRECTORIES = ("/workspace", "/home/user", "/tmp")
_SLEEP = re.compile(r"(?:time\.)?sleep\(\s*(\d+(?:\.\d+)?)\s*\)")


@dataclass
class FakeSandbox:
    spec: SandboxSpec
    files: dict[str, bytes] = field(default_factory=dict)
    directories: set[str] = field(default_factory=lambda: set(ROOT_DIRECTORIES))
    runs: list[CodeRun] = field(default_factory=list)
    timeout_seconds: int = 0

    def all_directories(self) -> set[str]:
        """The directories made explicitly and every parent of a file (tests may fill `files`)."""
        parents = {str(p) for path in self.files for p in PurePosixPath(path).parents}
        return (self.directories | parents) - {"/"}


class FakeSandboxProvider:
    def __init__(self) -> None:
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.killed: list[str] = []
        self._ids = itertools.count(1)
        # Failure switches: the next call of that kind raises the given domain error.
        self.fail_create: DomainError | None = None
        self.fail_next_call: DomainError | None = None
        self.fail_kill: DomainError | None = None
        self.next_outcome: ExecutionOutcome | None = None
        # Runs inside create, e.g. to send a second request while the first is in flight.
        self.during_create: Callable[[], None] | None = None
        # Runs at the start of the next sandbox call (execute, files, extend): a race's other side.
        self.during_next_call: Callable[[], None] | None = None
        # Runs inside kill, after the sandbox is gone and before kill returns.
        self.during_kill: Callable[[], None] | None = None
        # The warm pool: sandboxes booted for it, those bound to a session, and a bind failure.
        self.booted: list[CreatedSandbox] = []
        self.bound: list[str] = []
        self.fail_bind: DomainError | None = None

    # --- SandboxProvider --------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> CreatedSandbox:
        if self.fail_create is not None:
            error, self.fail_create = self.fail_create, None
            raise error
        if self.during_create is not None:
            hook, self.during_create = self.during_create, None
            hook()
        if spec.environment.template not in KNOWN_TEMPLATES:
            raise ProviderError("the provider failed to create the sandbox")  # as E2B and Docker do
        sandbox_id = f"fake-{next(self._ids)}"
        self.sandboxes[sandbox_id] = FakeSandbox(spec, timeout_seconds=spec.timeout_seconds)
        return CreatedSandbox(sandbox_id)

    # --- PoolingProvider (the warm pool) -------------------------------------------------------
    def boot(self, environment: Environment, timeout_seconds: int) -> CreatedSandbox:
        spec = SandboxSpec("", "", environment, timeout_seconds)
        self.booted.append(created := self.create(spec))
        return created

    def bind(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        if self.fail_bind is not None:
            error, self.fail_bind = self.fail_bind, None
            raise error
        sandbox = self.sandboxes.get(pooled.sandbox_id)
        if sandbox is None:
            raise SandboxGone("the pooled sandbox is gone")
        sandbox.spec, sandbox.timeout_seconds = spec, spec.timeout_seconds
        self.bound.append(pooled.sandbox_id)
        return self.bound_as(pooled, spec)

    def bound_as(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        return CreatedSandbox(pooled.sandbox_id, pooled.access)

    def execute(self, ref: SandboxRef, run: CodeRun) -> ExecutionOutcome:
        sandbox = self._live(ref)
        sandbox.runs.append(run)
        if self.next_outcome is not None:
            outcome, self.next_outcome = self.next_outcome, None
            return outcome
        sleep = _SLEEP.search(run.code)
        if sleep is not None and float(sleep.group(1)) >= run.timeout_seconds:
            # Real providers stop the code at its limit: a timeout outcome, not an error.
            return timed_out(run.timeout_seconds, run.timeout_seconds * 1000.0)
        if run.code.startswith("raise "):
            name = run.code.removeprefix("raise ").split("(")[0]
            return ExecutionOutcome(
                status=ExecutionStatus.ERROR,
                error=ExecutionErrorInfo(
                    name=name, value="raised", traceback=f"Traceback...\n{name}: raised"
                ),
                execution_count=len(sandbox.runs),
            )
        return ExecutionOutcome(
            status=ExecutionStatus.OK,
            stdout=f"ran {run.language.value}: {run.code}\n",
            execution_count=len(sandbox.runs),
        )

    def list_files(self, ref: SandboxRef, directory: str) -> list[FileEntry]:
        sandbox = self._live(ref)
        directory = directory.rstrip("/") or "/"
        directories = sandbox.all_directories()
        if directory in sandbox.files:
            raise InvalidFileOperation(f"{directory} is a file, not a directory")
        if directory not in directories:
            raise FileNotFound(f"{directory} does not exist")
        entries = [
            FileEntry(name=_name(path), path=path, type=FileType.FILE, size=len(data))
            for path, data in sandbox.files.items()
            if _parent(path) == directory
        ] + [
            FileEntry(name=_name(path), path=path, type=FileType.DIRECTORY)
            for path in directories
            if path != directory and _parent(path) == directory
        ]
        return sorted(entries, key=lambda e: e.name)

    def read_file(self, ref: SandboxRef, path: str, max_bytes: int) -> bytes:
        sandbox = self._live(ref)
        if path in sandbox.all_directories():
            raise InvalidFileOperation(f"{path} is a directory, not a file")
        if path not in sandbox.files:
            raise FileNotFound(f"{path} does not exist")
        if len(sandbox.files[path]) > max_bytes:
            raise PayloadTooLarge(f"{path} is too large")
        return sandbox.files[path]

    def write_file(self, ref: SandboxRef, path: str, data: bytes) -> FileEntry:
        sandbox = self._live(ref)
        # Never lose data: a write does not replace a directory, nor a file on the way to it.
        if path in sandbox.all_directories():
            raise InvalidFileOperation(f"{path} is a directory; nothing was changed")
        parents = [str(p) for p in PurePosixPath(path).parents]
        for parent in parents:
            if parent in sandbox.files:
                raise InvalidFileOperation(f"{parent} is a file; nothing was changed")
        sandbox.directories.update(p for p in parents if p != "/")
        sandbox.files[path] = data
        return FileEntry(name=_name(path), path=path, type=FileType.FILE, size=len(data))

    def delete_file(self, ref: SandboxRef, path: str) -> None:
        sandbox = self._live(ref)
        if sandbox.files.pop(path, None) is not None:
            return
        if path not in sandbox.all_directories():
            raise FileNotFound(f"{path} does not exist")
        # A directory goes with everything under it, as E2B's remove does.
        inside = path.rstrip("/") + "/"
        sandbox.directories = {d for d in sandbox.directories if d != path and not d.startswith(inside)}
        sandbox.files = {f: b for f, b in sandbox.files.items() if not f.startswith(inside)}

    def extend(self, ref: SandboxRef, timeout_seconds: int) -> None:
        self._live(ref).timeout_seconds = timeout_seconds

    def kill(self, sandbox_id: str) -> None:
        if self.fail_kill is not None:
            error, self.fail_kill = self.fail_kill, None
            raise error
        self.killed.append(sandbox_id)
        self.sandboxes.pop(sandbox_id, None)
        if self.during_kill is not None:
            hook, self.during_kill = self.during_kill, None
            hook()

    # --- test helpers -------------------------------------------------------------------------
    def lose(self, sandbox_id: str) -> None:
        """The sandbox disappears behind the service's back."""
        self.sandboxes.pop(sandbox_id, None)

    @property
    def live_ids(self) -> set[str]:
        return set(self.sandboxes)

    def _live(self, ref: SandboxRef) -> FakeSandbox:
        if self.during_next_call is not None:
            hook, self.during_next_call = self.during_next_call, None
            hook()
        if self.fail_next_call is not None:
            error, self.fail_next_call = self.fail_next_call, None
            raise error
        sandbox = self.sandboxes.get(ref.sandbox_id)
        if sandbox is None:
            raise SandboxGone("the session's sandbox no longer exists")
        return sandbox


def _parent(path: str) -> str:
    return str(PurePosixPath(path).parent)


def _name(path: str) -> str:
    return PurePosixPath(path).name
