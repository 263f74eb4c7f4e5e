"""SnapStart runtime hooks: nothing that must be unique or fresh per environment lives in a snapshot.

With SnapStart, Lambda runs a function's init once when a version is published, snapshots the
memory, and resumes every new execution environment of that version from the same snapshot. So
whatever init built is shared by all of them and may be hours old: boto3 clients (their
credentials and pooled connections), E2B clients and connections, the E2B key read from Secrets
Manager, the `random` module's state. Before the snapshot and after each restore the hooks drop
all of it (wiring's cached objects, Powertools' parameter caches, boto3's default session) and
reseed `random`; the first request builds them afresh, and reads the key then.

`snapshot_restore_py` ships with Lambda's Python runtimes only: elsewhere (tests, the local
stack) registering is a no-op. Each function's app.py calls `register()` at import, so the
hooks are registered during init, as Lambda requires.
"""

from __future__ import annotations

import importlib
import random

import boto3
from aws_lambda_powertools.utilities import parameters

from sandbox_gateway import wiring

_registered = False


def forget_environment_state() -> None:
    """Drop every cached client, connection and secret; the next request builds them anew."""
    wiring.reset(keep_overrides=True)
    parameters.clear_caches()  # the E2B key (and the boto3 client that read it)
    boto3.DEFAULT_SESSION = None  # its resolved credentials would outlive the environment


def before_snapshot() -> None:
    forget_environment_state()


def after_restore() -> None:
    forget_environment_state()
    # Every environment restored from one snapshot would draw the same "random" jitter (backoff
    # of table writes and callbacks): reseed from the OS. uuid4 and `secrets` use os.urandom.
    random.seed()


def register() -> bool:
    """Register the hooks with Lambda's runtime once; False where there is no SnapStart runtime."""
    global _registered  # noqa: PLW0603 - registered once per process, whatever imports it
    try:
        hooks = importlib.import_module("snapshot_restore_py")
    except ImportError:
        return False
    if not _registered:
        hooks.register_before_snapshot(before_snapshot)
        hooks.register_after_restore(after_restore)
        _registered = True
    return True
