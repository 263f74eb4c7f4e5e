"""The warm pool (docs/decisions/0010-warm-pool.md): sandboxes booted ahead of time, per
environment, so a session create binds one instead of waiting for a boot.

A pooled sandbox is claimed once (the store's claim is atomic) and was never used before: it is
booted with no session's metadata, envs or files, and killed when retired. A create that asks
for `envs` boots its own (a sandbox's environment variables are fixed when it starts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.models.environment import Environment, Provider
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.observability import logger
from sandbox_gateway.ports import (
    CreatedSandbox,
    PooledSandbox,
    PoolingProvider,
    SandboxPool,
    SandboxProvider,
    SandboxSpec,
)

# A pooled sandbox lives this much longer than its pool age, so a claim near the end of that age
# still has time to bind it; the store's claim skips entries within a minute of their end.
BOOT_MARGIN_SECONDS = 180
CLAIM_ATTEMPTS = 3  # a claimed sandbox that cannot be bound (it died) is killed; try the next


@dataclass
class RefillReport:
    booted: int = 0
    retired: int = 0
    failed: int = 0


class WarmPool:
    def __init__(
        self,
        store: SandboxPool,
        providers: Callable[[Provider], SandboxProvider],
        catalogue: EnvironmentCatalogue,
        *,
        sizes: Mapping[str, int],
        max_age_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._providers = providers
        self._catalogue = catalogue
        self._sizes = {name: size for name, size in sizes.items() if size > 0}
        self._max_age = max_age_seconds
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def size(self, environment: str) -> int:
        return self._sizes.get(environment, 0)

    # --- claim (session create) -----------------------------------------------------------
    def offer(self, spec: SandboxSpec) -> tuple[PoolingProvider, list[PooledSandbox]] | None:
        """The provider and a few claimable pooled sandboxes for this session, oldest first, or None
        (no pool for its environment, `envs` asked for, or the pool empty). Taking one is the
        session's own first write (SessionRepository.put_new's `claiming`), then `bind`.

        Never fails the create: a pool that cannot answer is an empty pool."""
        provider = self._usable_for(spec)
        if provider is None:
            return None
        try:
            entries = self._store.candidates(spec.environment.name)
        except DomainError as exc:
            _unavailable(spec, exc)
            return None
        return (provider, entries) if entries else None

    def claim(self, spec: SandboxSpec) -> CreatedSandbox | None:
        """A pooled sandbox taken out of the pool and bound to the session, or None: then the
        caller boots one as before. Never fails the create."""
        provider = self._usable_for(spec)
        if provider is None:
            return None
        for _ in range(CLAIM_ATTEMPTS):
            try:
                entry = self._store.claim(spec.environment.name)
            except DomainError as exc:
                _unavailable(spec, exc)
                return None
            if entry is None:
                return None
            try:
                return provider.bind(entry, spec)
            except DomainError as exc:
                logger.warning("a pooled sandbox could not be bound", extra={"error": exc.code})
                _kill_quietly(provider, entry.sandbox_id)
        return None

    def _usable_for(self, spec: SandboxSpec) -> PoolingProvider | None:
        env = spec.environment
        provider = self._pooling(env)
        if provider is None or spec.envs or not self.size(env.name):
            return None
        return provider

    # --- refill (scheduled) ---------------------------------------------------------------
    def refill(self, deadline: float) -> RefillReport:
        """Retire stale entries, then boot until each environment has its size, until `deadline`."""
        report = RefillReport()
        for name, size in self._sizes.items():
            env = self._catalogue.get(name)
            provider = self._pooling(env)
            if provider is None:
                logger.warning("no warm pool for this provider", extra={"environment": name})
                continue
            live = self._retire_stale(provider, name, report)
            for _ in range(size - live):
                if self._clock() >= deadline:
                    return report
                self._boot_one(provider, env, report)
        return report

    def _retire_stale(self, provider: PoolingProvider, environment: str, report: RefillReport) -> int:
        now = self._clock()
        live = 0
        for entry in self._store.entries(environment):
            stale = entry.booted_at + self._max_age <= now or entry.expires_at <= now + BOOT_MARGIN_SECONDS
            if not stale:
                live += 1
            elif self._store.remove(entry):  # False: a create claimed it a moment ago
                _kill_quietly(provider, entry.sandbox_id)
                report.retired += 1
        return live

    def _boot_one(self, provider: PoolingProvider, env: Environment, report: RefillReport) -> None:
        timeout = self._max_age + BOOT_MARGIN_SECONDS
        booted_at = self._clock()
        try:
            created = provider.boot(env, timeout)
        except DomainError as exc:
            logger.warning("pooled boot failed", extra={"environment": env.name, "error": exc.code})
            report.failed += 1
            return
        expires_at = int(booted_at) + timeout
        entry = PooledSandbox(env.name, created.sandbox_id, booted_at, expires_at, created.access)
        try:
            self._store.add(entry)
        except DomainError:
            _kill_quietly(provider, created.sandbox_id)  # a sandbox nobody can claim must not run on
            report.failed += 1
            return
        report.booted += 1

    def _pooling(self, env: Environment) -> PoolingProvider | None:
        provider = self._providers(env.provider)
        # By attribute, not isinstance: providers come wrapped (timing.Timed), and a protocol's
        # isinstance does not see through __getattr__ on Python >= 3.12.
        if callable(getattr(provider, "boot", None)) and callable(getattr(provider, "bind", None)):
            return cast(PoolingProvider, provider)
        return None


def _unavailable(spec: SandboxSpec, error: DomainError) -> None:
    logger.warning("warm pool unavailable", extra={"environment": spec.environment.name, "error": error.code})


def _kill_quietly(provider: SandboxProvider, sandbox_id: str) -> None:
    try:
        provider.kill(sandbox_id)
    except DomainError:
        logger.warning("could not kill a pooled sandbox; its own timeout ends it")
