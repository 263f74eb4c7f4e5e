"""FakeSandboxProvider: an in-memory provider with failure switches, for services and handlers.

It keeps files per sandbox and "runs" code by a tiny rule set, enough to see that the service
passes the right things through; the real providers are exercised by tests/contract.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox_gateway.models.errors import DomainError, FileNotFound, PayloadTooLarge, SandboxGone
from sandbox_gateway.models.execution import CodeRun, ExecutionErrorInfo, ExecutionOutcome, ExecutionStatus
from sandbox_gateway.models.files import FileEntry, FileType
from sandbox_gateway.ports import SandboxRef, SandboxSpec


@dataclass
class FakeSandbox:
    spec: SandboxSpec
    files: dict[str, bytes] = field(default_factory=dict)
    runs: list[CodeRun] = field(default_factory=list)
    timeout_seconds: int = 0


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

    # --- SandboxProvider --------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> str:
        if self.fail_create is not None:
            error, self.fail_create = self.fail_create, None
            raise error
        if self.during_create is not None:
            hook, self.during_create = self.during_create, None
            hook()
        sandbox_id = f"fake-{next(self._ids)}"
        self.sandboxes[sandbox_id] = FakeSandbox(spec, timeout_seconds=spec.timeout_seconds)
        return sandbox_id

    def execute(self, ref: SandboxRef, run: CodeRun) -> ExecutionOutcome:
        sandbox = self._live(ref)
        sandbox.runs.append(run)
        if self.next_outcome is not None:
            outcome, self.next_outcome = self.next_outcome, None
            return outcome
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
        prefix = directory.rstrip("/") + "/"
        return [
            FileEntry(name=path.removeprefix(prefix), path=path, type=FileType.FILE, size=len(data))
            for path, data in sorted(sandbox.files.items())
            if path.startswith(prefix) and "/" not in path.removeprefix(prefix)
        ]

    def read_file(self, ref: SandboxRef, path: str, max_bytes: int) -> bytes:
        sandbox = self._live(ref)
        if path not in sandbox.files:
            raise FileNotFound(f"{path} does not exist")
        if len(sandbox.files[path]) > max_bytes:
            raise PayloadTooLarge(f"{path} is too large")
        return sandbox.files[path]

    def write_file(self, ref: SandboxRef, path: str, data: bytes) -> FileEntry:
        self._live(ref).files[path] = data
        return FileEntry(name=path.rsplit("/", 1)[-1], path=path, type=FileType.FILE, size=len(data))

    def delete_file(self, ref: SandboxRef, path: str) -> None:
        sandbox = self._live(ref)
        if sandbox.files.pop(path, None) is None:
            raise FileNotFound(f"{path} does not exist")

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
