"""The environment catalogue and language resolution."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sandbox_gateway.catalogue import EnvironmentCatalogue, resolve_language
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Environment, Language, Provider
from sandbox_gateway.models.errors import (
    InvalidRequest,
    ProviderMismatch,
    ProviderNotAllowed,
    UnknownEnvironment,
    UnsupportedLanguage,
)
from sandbox_gateway.providers import ProviderRegistry

E2B_ONLY = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, [Provider.E2B]))
BOTH = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, [Provider.E2B, Provider.DOCKER]))


def env(**overrides: Any) -> Environment:
    fields: dict[str, Any] = {
        "name": "py-only",
        "provider": Provider.E2B,
        "template": "my-template",
        "default_language": Language.PYTHON,
        "languages": (Language.PYTHON,),
    }
    fields.update(overrides)
    return Environment(**fields)


# --- resolve -----------------------------------------------------------------------------------


def test_catalogue_resolve_returns_built_in_environment() -> None:
    resolved = E2B_ONLY.resolve("e2b-python", None)
    assert resolved.name == "e2b-python"
    assert resolved.provider is Provider.E2B
    assert resolved.allow_internet_access is False


@pytest.mark.parametrize("provider", [None, "e2b"])
def test_catalogue_resolve_accepts_matching_or_absent_provider(provider: str | None) -> None:
    assert E2B_ONLY.resolve("e2b-node", provider).default_language is Language.JAVASCRIPT


@pytest.mark.parametrize("name", ["nope", "", "E2B-PYTHON", "e2b-python ", "../e2b-python"])
def test_catalogue_resolve_unknown_environment_lists_available_names(name: str) -> None:
    with pytest.raises(UnknownEnvironment) as caught:
        E2B_ONLY.resolve(name, None)
    message = caught.value.message
    assert isinstance(caught.value, InvalidRequest)
    for available in ("e2b-python", "e2b-node", "e2b-bash"):
        assert available in message
    # Disabled providers are not advertised.
    assert "docker" not in message


def test_catalogue_resolve_docker_environment_when_only_e2b_enabled_is_not_allowed() -> None:
    with pytest.raises(ProviderNotAllowed) as caught:
        E2B_ONLY.resolve("docker-python", None)
    assert "docker" in caught.value.message
    assert "local" in caught.value.message
    assert "e2b-python" in caught.value.message
    assert caught.value.code == "provider_not_allowed"


def test_catalogue_resolve_docker_environment_when_docker_enabled() -> None:
    assert BOTH.resolve("docker-python", "docker").provider is Provider.DOCKER


@pytest.mark.parametrize(
    ("name", "provider"),
    [("e2b-python", "docker"), ("e2b-python", "E2B"), ("e2b-python", "aws"), ("docker-bash", "e2b")],
)
def test_catalogue_resolve_provider_mismatch(name: str, provider: str) -> None:
    with pytest.raises(ProviderMismatch) as caught:
        BOTH.resolve(name, provider)
    assert name in caught.value.message
    assert provider in caught.value.message


def test_catalogue_custom_environment_replaces_built_in_with_same_name() -> None:
    custom = env(name="e2b-python", template="my-tuned-template", memory_mb=2048)
    catalogue = EnvironmentCatalogue([*BUILT_IN_ENVIRONMENTS, custom], ProviderRegistry({}, [Provider.E2B]))
    assert catalogue.resolve("e2b-python", None) == custom
    assert [e for e in catalogue.available() if e.name == "e2b-python"] == [custom]


def test_catalogue_custom_environment_is_resolvable() -> None:
    custom = env(name="data-science")
    catalogue = EnvironmentCatalogue([*BUILT_IN_ENVIRONMENTS, custom], ProviderRegistry({}, [Provider.E2B]))
    assert catalogue.resolve("data-science", "e2b") is custom


def test_catalogue_available_hides_disabled_providers() -> None:
    assert {e.provider for e in E2B_ONLY.available()} == {Provider.E2B}
    assert {e.name for e in E2B_ONLY.available()} == {"e2b-python", "e2b-node", "e2b-bash"}
    assert {e.name for e in BOTH.available()} >= {"docker-python", "docker-node", "docker-bash"}


def test_catalogue_with_no_enabled_provider_says_none_available() -> None:
    empty = EnvironmentCatalogue(BUILT_IN_ENVIRONMENTS, ProviderRegistry({}, []))
    assert empty.available() == []
    with pytest.raises(ProviderNotAllowed) as caught:
        empty.resolve("e2b-python", None)
    assert "none" in caught.value.message


def test_catalogue_get_returns_environment_of_existing_session_even_if_provider_disabled() -> None:
    assert E2B_ONLY.get("docker-python").provider is Provider.DOCKER
    with pytest.raises(UnknownEnvironment):
        E2B_ONLY.get("removed-env")


# --- resolve_language --------------------------------------------------------------------------

CODE_INTERPRETER = E2B_ONLY.resolve("e2b-python", None)


@pytest.mark.parametrize("requested", [None, ""])
def test_resolve_language_defaults_to_environment_default(requested: str | None) -> None:
    assert resolve_language(requested, CODE_INTERPRETER) is Language.PYTHON
    assert resolve_language(requested, E2B_ONLY.resolve("e2b-bash", None)) is Language.BASH


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("python", Language.PYTHON),
        ("python3", Language.PYTHON),
        ("py", Language.PYTHON),
        ("Python", Language.PYTHON),
        ("PYTHON3", Language.PYTHON),
        (" python ", Language.PYTHON),
        ("js", Language.JAVASCRIPT),
        ("JS", Language.JAVASCRIPT),
        ("node", Language.JAVASCRIPT),
        ("nodejs", Language.JAVASCRIPT),
        ("javascript", Language.JAVASCRIPT),
        ("ts", Language.TYPESCRIPT),
        ("TypeScript", Language.TYPESCRIPT),
        ("sh", Language.BASH),
        ("shell", Language.BASH),
        ("Bash", Language.BASH),
    ],
)
def test_resolve_language_accepts_aliases_case_insensitively(requested: str, expected: Language) -> None:
    assert resolve_language(requested, CODE_INTERPRETER) is expected


@pytest.mark.parametrize("requested", ["ruby", "r", "python2", "c++", "py thon", "\u0440ython", "zsh"])
def test_resolve_language_rejects_unsupported_language_listing_offered_ones(requested: str) -> None:
    with pytest.raises(UnsupportedLanguage) as caught:
        resolve_language(requested, CODE_INTERPRETER)
    message = caught.value.message
    assert requested in message
    for offered in ("python", "javascript", "typescript", "bash"):
        assert offered in message


def test_resolve_language_rejects_language_the_environment_does_not_offer() -> None:
    python_only = env()
    with pytest.raises(UnsupportedLanguage) as caught:
        resolve_language("js", python_only)
    assert "py-only" in caught.value.message
    assert caught.value.message.endswith("use one of: python")


# --- Environment model -------------------------------------------------------------------------


def test_environment_default_language_must_be_offered() -> None:
    with pytest.raises(ValidationError) as caught:
        env(default_language=Language.BASH, languages=(Language.PYTHON,))
    assert "default_language must be one of its languages" in str(caught.value)


@pytest.mark.parametrize("name", ["a", "-abc", "Upper", "has_underscore", "has space", "x" * 64, "é-env", ""])
def test_environment_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValidationError):
        env(name=name)


@pytest.mark.parametrize("name", ["ab", "0x", "my-env-2", "x" * 63])
def test_environment_accepts_good_names(name: str) -> None:
    assert env(name=name).name == name


@pytest.mark.parametrize(
    "overrides",
    [
        {"provider": "lambda"},
        {"template": ""},
        {"languages": ("python", "cobol")},
        {"max_session_seconds": 59},
        {"cpu_count": 0},
        {"memory_mb": 63},
        {"privileged": True},
    ],
)
def test_environment_rejects_invalid_fields(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        env(**overrides)


def test_environment_is_frozen() -> None:
    with pytest.raises(ValidationError):
        env().name = "other"  # type: ignore[misc]


def test_built_in_environments_have_unique_names_and_no_internet() -> None:
    names = [e.name for e in BUILT_IN_ENVIRONMENTS]
    assert len(names) == len(set(names))
    assert not any(e.allow_internet_access for e in BUILT_IN_ENVIRONMENTS)
