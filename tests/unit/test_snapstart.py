"""SnapStart hooks: registered once with the runtime's snapshot_restore_py (a fake here), and the
after-restore hook leaves nothing from the snapshot behind: cached clients, secrets, random state."""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable, Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from sandbox_gateway import snapstart, wiring
from sandbox_gateway.models.environment import Provider


class FakeRuntimeHooks(types.ModuleType):
    """Stands in for snapshot_restore_py, which exists only in Lambda's Python runtimes."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []

    def register_before_snapshot(self, hook: Callable[[], None]) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Callable[[], None]) -> None:
        self.after.append(hook)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntimeHooks]:
    fake = FakeRuntimeHooks()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setattr(snapstart, "_registered", False)
    yield fake
    wiring.reset()


def restore(runtime: FakeRuntimeHooks) -> None:
    """What Lambda does around a snapshot: before-snapshot hooks, then after-restore hooks."""
    snapstart.register()
    for hook in reversed(runtime.before):
        hook()
    for hook in runtime.after:
        hook()


def test_register_without_the_snapstart_runtime_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    monkeypatch.setattr(snapstart, "_registered", False)
    assert snapstart.register() is False
    assert snapstart._registered is False


def test_register_registers_each_hook_once(runtime: FakeRuntimeHooks) -> None:
    assert snapstart.register() is True
    assert snapstart.register() is True  # a second import path (tests, local gateway) adds nothing
    assert runtime.before == [snapstart.before_snapshot]
    assert runtime.after == [snapstart.after_restore]


def test_after_restore_rebuilds_every_cached_client(runtime: FakeRuntimeHooks) -> None:
    snapshotted = (wiring.aws_client("sqs"), wiring.idempotent("execute"), wiring.callback_guard())
    snapstart.register()
    runtime.after[0]()
    restored = (wiring.aws_client("sqs"), wiring.idempotent("execute"), wiring.callback_guard())
    assert all(new is not old for new, old in zip(restored, snapshotted, strict=True))


def test_after_restore_keeps_test_overrides(runtime: FakeRuntimeHooks) -> None:
    sentinel = object()
    wiring.override(Provider.E2B, sentinel)
    restore(runtime)
    assert wiring._overrides == {Provider.E2B: sentinel}


def test_after_restore_forgets_the_e2b_key_and_boto3_default_session(runtime: FakeRuntimeHooks) -> None:
    DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider()  # what a read of the E2B key leaves
    boto3.setup_default_session()
    restore(runtime)
    assert "secrets" not in DEFAULT_PROVIDERS  # the key is read from Secrets Manager again
    assert boto3.DEFAULT_SESSION is None  # no credentials resolved before the snapshot survive


def test_after_restore_reseeds_random(runtime: FakeRuntimeHooks) -> None:
    random.seed(42)  # as if init had left the generator in a state every restore would share
    snapshotted = random.getstate()
    restore(runtime)
    assert random.getstate() != snapshotted
