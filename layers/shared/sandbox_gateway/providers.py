"""The one owner of which sandbox providers this deployment may use.

Docker runs untrusted code on the host it is on: acceptable on a developer's machine only, so it
is enabled in local mode alone (`sam local` or the local stack) and never in a deployed stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import ProviderNotAllowed, ProviderUnavailable
from sandbox_gateway.ports import SandboxProvider

LOCAL_ONLY = frozenset({Provider.DOCKER})


class ProviderRegistry:
    def __init__(
        self, factories: Mapping[Provider, Callable[[], SandboxProvider]], enabled: Iterable[Provider]
    ) -> None:
        self._factories = dict(factories)
        self.enabled = frozenset(enabled)

    @classmethod
    def for_deployment(
        cls, factories: Mapping[Provider, Callable[[], SandboxProvider]], *, local_mode: bool
    ) -> ProviderRegistry:
        return cls(factories, [p for p in Provider if local_mode or p not in LOCAL_ONLY])

    def require_enabled(self, provider: Provider, available: str = "") -> None:
        if provider not in self.enabled:
            hint = f"; available environments: {available}" if available else ""
            raise ProviderNotAllowed(
                f"provider '{provider}' is only available in local development "
                f"(AWS_SAM_LOCAL=true or LOCAL_MODE=true){hint}"
            )

    def get(self, provider: Provider) -> SandboxProvider:
        self.require_enabled(provider)
        factory = self._factories.get(provider)
        if factory is None:
            raise ProviderUnavailable(f"provider '{provider}' is not available in this build")
        return factory()
