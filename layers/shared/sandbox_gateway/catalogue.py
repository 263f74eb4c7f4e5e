"""The environment catalogue: built-in environments plus the operator's custom ones."""

from __future__ import annotations

from collections.abc import Iterable

from sandbox_gateway.models.environment import (
    LANGUAGE_ALIASES,
    Environment,
    Language,
)
from sandbox_gateway.models.errors import (
    ProviderMismatch,
    UnknownEnvironment,
    UnsupportedLanguage,
)
from sandbox_gateway.providers import ProviderRegistry


class EnvironmentCatalogue:
    def __init__(self, environments: Iterable[Environment], providers: ProviderRegistry) -> None:
        # A custom environment with a built-in's name replaces it: operators can retune limits.
        self._by_name = {env.name: env for env in environments}
        self._providers = providers

    def available(self) -> list[Environment]:
        return [env for env in self._by_name.values() if env.provider in self._providers.enabled]

    def resolve(self, name: str, provider: str | None) -> Environment:
        """The environment a create request asks for, or a 400 that says what exists."""
        env = self._by_name.get(name)
        if env is None:
            raise UnknownEnvironment(f"unknown environment '{name}'; available: {self._names()}")
        self._providers.require_enabled(env.provider, available=self._names())
        if provider is not None and provider != env.provider:
            raise ProviderMismatch(
                f"environment '{name}' runs on provider '{env.provider}', not '{provider}'; "
                f"available: {self._names()}"
            )
        return env

    def get(self, name: str) -> Environment:
        """The environment of an existing session (it may have been removed from config since)."""
        env = self._by_name.get(name)
        if env is None:
            raise UnknownEnvironment(f"environment '{name}' is no longer configured")
        return env

    def _names(self) -> str:
        return ", ".join(f"{env.name} ({env.provider})" for env in self.available()) or "none"


def resolve_language(requested: str | None, environment: Environment) -> Language:
    if requested is None or requested == "":
        return environment.default_language
    language = LANGUAGE_ALIASES.get(requested.strip().lower())
    if language is None or language not in environment.languages:
        offered = ", ".join(lang.value for lang in environment.languages)
        raise UnsupportedLanguage(
            f"language '{requested}' is not offered by environment '{environment.name}'; "
            f"use one of: {offered}"
        )
    return language
