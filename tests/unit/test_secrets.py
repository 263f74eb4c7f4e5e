"""Where the E2B API key comes from: E2B_API_KEY locally, Secrets Manager when deployed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from sandbox_gateway.adapters.secrets import e2b_api_key_source
from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import ProviderNotConfigured, ProviderUnavailable

_names = count()


@pytest.fixture(scope="module")
def secretsmanager() -> Iterator[Any]:
    # One moto mock for the module (starting one per test costs ~0.2 s); every test uses its own
    # secret name, so Powertools' secret cache cannot leak a value from one test into another.
    with mock_aws():
        parameters.clear_caches()  # its provider must build its boto3 client inside the mock
        yield boto3.client("secretsmanager", region_name="us-east-1")
        parameters.clear_caches()


def secret_name() -> str:
    return f"sandbox-gateway/e2b-api-key-{next(_names)}"


@pytest.fixture
def put_secret(secretsmanager: Any) -> Callable[[str], str]:
    def put(value: str) -> str:
        name = secret_name()
        secretsmanager.create_secret(Name=name, SecretString=value)
        return name

    return put


def test_e2b_api_key_source_uses_e2b_api_key() -> None:
    source = e2b_api_key_source(Settings(e2b_api_key="e2b_local_key"))
    assert source() == "e2b_local_key"


def test_e2b_api_key_source_without_key_raises_provider_not_configured_when_called() -> None:
    source = e2b_api_key_source(Settings())  # building the source must not fail: only using it
    with pytest.raises(ProviderNotConfigured) as caught:
        source()
    assert "E2B_API_KEY" in caught.value.message
    assert caught.value.code == "provider_not_configured"


@pytest.mark.parametrize("stored", ["e2b_plain_key", "  e2b_plain_key\n"])
def test_e2b_api_key_source_reads_plain_string_secret(stored: str, put_secret: Callable[[str], str]) -> None:
    source = e2b_api_key_source(Settings(e2b_api_key_secret_id=put_secret(stored)))
    assert source() == "e2b_plain_key"


@pytest.mark.parametrize(
    "document",
    [
        {"E2B_API_KEY": "e2b_json_key"},
        {"api_key": "e2b_json_key"},
        {"apiKey": "e2b_json_key"},
        {"E2B_API_KEY": "e2b_json_key", "other": "ignored"},
    ],
)
def test_e2b_api_key_source_reads_json_secret(
    document: dict[str, str], put_secret: Callable[[str], str]
) -> None:
    source = e2b_api_key_source(Settings(e2b_api_key_secret_id=put_secret(json.dumps(document))))
    assert source() == "e2b_json_key"


def test_e2b_api_key_source_secret_id_wins_over_plain_key(put_secret: Callable[[str], str]) -> None:
    secret_id = put_secret("from-secrets-manager")
    source = e2b_api_key_source(Settings(e2b_api_key="from-env", e2b_api_key_secret_id=secret_id))
    assert source() == "from-secrets-manager"


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (json.dumps({"OTHER_KEY": "x"}), "E2B_API_KEY"),
        (json.dumps({"E2B_API_KEY": ""}), "E2B_API_KEY"),
        (json.dumps({"E2B_API_KEY": 12345}), "E2B_API_KEY"),
        ('{"E2B_API_KEY": ', "malformed JSON"),
        ("   ", "empty"),
    ],
)
def test_e2b_api_key_source_unusable_secret_raises_provider_not_configured(
    stored: str, problem: str, put_secret: Callable[[str], str]
) -> None:
    source = e2b_api_key_source(Settings(e2b_api_key_secret_id=put_secret(stored)))
    with pytest.raises(ProviderNotConfigured) as caught:
        source()
    assert problem in caught.value.message
    assert stored.strip() == "" or stored not in caught.value.message  # never echo the secret


def test_e2b_api_key_source_missing_secret_raises_provider_unavailable(secretsmanager: Any) -> None:
    source = e2b_api_key_source(Settings(e2b_api_key_secret_id=secret_name()))
    with pytest.raises(ProviderUnavailable) as caught:
        source()
    assert not isinstance(caught.value, ProviderNotConfigured)
    assert "Secrets Manager" in caught.value.message


def test_e2b_api_key_source_caches_the_secret(secretsmanager: Any, put_secret: Callable[[str], str]) -> None:
    secret_id = put_secret("first-value")
    source = e2b_api_key_source(Settings(e2b_api_key_secret_id=secret_id))
    assert source() == "first-value"
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString="rotated-value")
    assert source() == "first-value"
    parameters.clear_caches()
    assert source() == "rotated-value"
