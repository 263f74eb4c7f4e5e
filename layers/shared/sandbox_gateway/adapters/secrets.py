"""The E2B API key: Secrets Manager in AWS (cached), E2B_API_KEY locally."""

from __future__ import annotations

import json
from collections.abc import Callable

from aws_lambda_powertools.utilities import parameters

from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import ProviderNotConfigured, ProviderUnavailable

SECRET_CACHE_SECONDS = 300
_JSON_KEYS = ("E2B_API_KEY", "api_key", "apiKey")


def e2b_api_key_source(settings: Settings) -> Callable[[], str]:
    """A zero-argument callable returning the key; it reads the secret lazily and caches it."""
    if settings.e2b_api_key_secret_id:
        secret_id = settings.e2b_api_key_secret_id
        return lambda: _from_secrets_manager(secret_id)
    key = settings.e2b_api_key
    if key:
        return lambda: key

    def missing() -> str:
        raise ProviderNotConfigured(
            "the E2B provider has no API key: set E2B_API_KEY_SECRET_ID (deployed) or E2B_API_KEY (local), "
            "or run `make dev`, which starts the local E2B-compatible host"
        )

    return missing


def _from_secrets_manager(secret_id: str) -> str:
    try:
        value = parameters.get_secret(secret_id, max_age=SECRET_CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise ProviderUnavailable("could not read the E2B API key from Secrets Manager") from exc
    text = value.decode() if isinstance(value, bytes) else str(value)
    return _key_from_secret_text(text)


def _key_from_secret_text(text: str) -> str:
    """Accept a plain key or a JSON object holding it (the console's key/value form)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ProviderNotConfigured("the E2B API key secret is malformed JSON") from exc
        for name in _JSON_KEYS:
            if isinstance(document.get(name), str) and document[name]:
                return str(document[name])
        raise ProviderNotConfigured(f"the E2B API key secret has none of the keys {', '.join(_JSON_KEYS)}")
    if not stripped:
        raise ProviderNotConfigured("the E2B API key secret is empty")
    return stripped
