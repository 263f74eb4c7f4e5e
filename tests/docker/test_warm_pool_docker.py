"""The warm pool on the Docker provider (docs/decisions/0010-warm-pool.md): a pooled container is
booted as `create` prepares one, bound once by a rename, fresh when bound, and reaped by the same
rules as a created one (its session live: kept; ended: removed; unbound: its label ends it)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from sandbox_gateway.adapters.docker import LABEL_POOL, LABEL_SESSION, DockerSandboxProvider
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.models.errors import ProviderError, SandboxGone
from sandbox_gateway.models.execution import CodeRun
from sandbox_gateway.ports import PooledSandbox, SandboxRef, SandboxSpec
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.pool import WarmPool

ENVIRONMENT = next(e for e in BUILT_IN_ENVIRONMENTS if e.name == "docker-python")
TENANT = "tenant.docker-pool"  # a dot, as tenant ids may have: the bound name must still parse


class ListPool:
    """An in-memory SandboxPool (the DynamoDB one's atomic claim is tested over moto)."""

    def __init__(self) -> None:
        self._entries: list[PooledSandbox] = []
        self._lock = threading.Lock()

    def add(self, entry: PooledSandbox) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, environment: str) -> list[PooledSandbox]:
        return [e for e in self._entries if e.environment == environment]

    def claim(self, environment: str) -> PooledSandbox | None:
        with self._lock:
            for entry in self._entries:
                if entry.environment == environment:
                    self._entries.remove(entry)
                    return entry
        return None

    def remove(self, entry: PooledSandbox) -> bool:
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
                return True
        return False


@pytest.fixture(scope="module")
def owner() -> str:
    return f"pool-test-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def pooling(engine: docker.DockerClient, owner: str) -> Iterator[DockerSandboxProvider]:
    provider = DockerSandboxProvider(Settings(docker_owner=owner, docker_memory_mb=256, docker_pids_limit=64))
    yield provider
    provider.reap(everything=True)  # this module's owner only: nothing of anyone else's


def warm_pool(provider: DockerSandboxProvider, store: ListPool, size: int = 1) -> WarmPool:
    catalogue = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, [Provider.DOCKER]))
    return WarmPool(store, lambda _: provider, catalogue, sizes={ENVIRONMENT.name: size}, max_age_seconds=600)


def spec(session_id: str, timeout: int = 300, envs: dict[str, str] | None = None) -> SandboxSpec:
    return SandboxSpec(session_id, TENANT, ENVIRONMENT, timeout, envs=envs or {})


def ref_of(sandbox_id: str, session_id: str) -> SandboxRef:
    return SandboxRef(sandbox_id, session_id, ENVIRONMENT, int(time.time()) + 300)


def run(provider: DockerSandboxProvider, ref: SandboxRef, code: str) -> str:
    code_run = CodeRun(code=code, language=ENVIRONMENT.default_language, timeout_seconds=30)
    return provider.execute(ref, code_run).stdout


def pooled_entry(sandbox_id: str, booted_at: float) -> PooledSandbox:
    return PooledSandbox(ENVIRONMENT.name, sandbox_id, booted_at, int(booted_at) + 60)


def names(engine: docker.DockerClient, owner: str) -> set[str]:
    label = f"sandbox-gateway.owner={owner}"
    return {c.name for c in engine.containers.list(all=True, filters={"label": label})}


def test_a_create_binds_the_pooled_container_once_and_finds_it_fresh(
    pooling: DockerSandboxProvider, engine: docker.DockerClient, owner: str
) -> None:
    store = ListPool()
    pool = warm_pool(pooling, store)
    assert pool.refill(time.time() + 60).booted == 1
    (entry,) = store.entries(ENVIRONMENT.name)
    pooled = engine.containers.get(entry.sandbox_id)
    assert pooled.labels[LABEL_POOL] == ENVIRONMENT.name and LABEL_SESSION not in pooled.labels

    assert pool.claim(spec("ses_pool_envs", envs={"A": "1"})) is None  # envs: never from the pool
    assert store.entries(ENVIRONMENT.name) == [entry]

    bound = pool.claim(spec("ses_pool_first"))
    assert bound is not None and store.entries(ENVIRONMENT.name) == []
    assert engine.containers.get(bound.sandbox_id).id == pooled.id  # the same container, renamed
    assert entry.sandbox_id not in names(engine, owner)
    with pytest.raises(SandboxGone):  # claimed once: its pooled name is gone
        pooling.bind(entry, spec("ses_pool_again"))
    pooling.kill(entry.sandbox_id)  # a retire that lost the race to the claim: its volumes are in use

    ref = ref_of(bound.sandbox_id, "ses_pool_first")
    assert run(pooling, ref, "import os; print(os.getcwd(), os.listdir('.'))") == "/workspace []\n"
    assert run(pooling, ref, "print('x' in dir(), 'SESSION' in __import__('os').environ)") == "False False\n"

    assert pool.claim(spec("ses_pool_second")) is None  # empty: the caller creates as before
    pooling.kill(bound.sandbox_id)
    volumes = {v.name for v in engine.volumes.list(filters={"label": f"sandbox-gateway.owner={owner}"})}
    assert not [v for v in volumes if v.startswith(entry.sandbox_id)]  # its volumes went with it


def test_the_reaper_keeps_a_bound_container_while_its_session_lives_and_removes_it_after(
    pooling: DockerSandboxProvider, engine: docker.DockerClient, owner: str
) -> None:
    pooled = pooling.boot(ENVIRONMENT, 1)  # its pool label ends in a second
    unbound = pooling.boot(ENVIRONMENT, 1)
    booted = time.time()
    bound = pooling.bind(pooled_entry(pooled.sandbox_id, booted), spec("ses_pool_live", 1))
    time.sleep(1.1)  # both labels and the session's first expiry have passed
    asked: list[tuple[str, str]] = []

    def live(tenant: str, session: str) -> bool:
        asked.append((tenant, session))
        return True  # a keep-alive moved the session's expiry

    assert pooling.reap(live) == [unbound.sandbox_id]  # unbound: its label alone ends it
    assert asked == [(TENANT, "ses_pool_live")]  # the bound one's session, read from its name
    assert bound.sandbox_id in names(engine, owner)
    assert run(pooling, ref_of(bound.sandbox_id, "ses_pool_live"), "print(1)") == "1\n"

    later = DockerSandboxProvider(pooling._settings, clock=lambda: time.time() + 1000)
    assert later.reap(live) == []  # volumes long past their grace, but mounted: kept
    assert run(pooling, ref_of(bound.sandbox_id, "ses_pool_live"), "print(2)") == "2\n"

    assert pooling.reap(lambda tenant, session: False) == [bound.sandbox_id]  # the session ended
    assert names(engine, owner) == set()
    volumes = engine.volumes.list(filters={"label": f"sandbox-gateway.owner={owner}"})
    assert [v.name for v in volumes] == []


def test_labels_alone_keep_a_bound_container_until_its_sessions_first_expiry(
    pooling: DockerSandboxProvider, engine: docker.DockerClient, owner: str
) -> None:
    """`make reap --labels-only` (no session store): a bound container's first expiry is in its
    name, so its pool label ending does not end the session's container before then."""
    pooled = pooling.boot(ENVIRONMENT, 1)
    bound = pooling.bind(pooled_entry(pooled.sandbox_id, time.time()), spec("ses_pool_own"))
    time.sleep(1.1)
    assert pooling.reap() == []
    later = DockerSandboxProvider(pooling._settings, clock=lambda: time.time() + 301)
    assert later.reap() == [bound.sandbox_id]
    assert names(engine, owner) == set()


def test_pooled_boot_failure_leaves_nothing(pooling: DockerSandboxProvider, owner: str, engine: Any) -> None:
    broken = ENVIRONMENT.model_copy(update={"template": "sandbox-gateway-no-such-image:none"})
    with pytest.raises(ProviderError):  # the image is missing
        pooling.boot(broken, 60)
    assert names(engine, owner) == set()
    assert engine.volumes.list(filters={"label": f"sandbox-gateway.owner={owner}"}) == []
